// scatters
