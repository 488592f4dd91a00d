// The images explorer page (/images?q=AIMQL&step=N&group_by=FIELD&size=PX).

import { markNav } from "../dom.js";
import { mountImages } from "../views/images.js";

markNav("images");
mountImages(document.getElementById("app"));
