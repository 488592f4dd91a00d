// The figures explorer page (/figures?q=AIMQL&step=N&group_by=FIELD).

import { markNav } from "../dom.js";
import { mountFigures } from "../views/figures.js";

markNav("figures");
mountFigures(document.getElementById("app"));
