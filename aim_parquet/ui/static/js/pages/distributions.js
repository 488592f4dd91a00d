// The distributions explorer page (/distributions?q=AIMQL).

import { markNav } from "../dom.js";
import { mountDistributions } from "../views/distributions.js";

markNav("distributions");
mountDistributions(document.getElementById("app"));
