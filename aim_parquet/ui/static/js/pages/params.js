// params
