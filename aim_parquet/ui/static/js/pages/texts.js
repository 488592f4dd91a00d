// The texts explorer page (/texts?q=AIMQL&search=WORDS).

import { markNav } from "../dom.js";
import { mountTexts } from "../views/texts.js";

markNav("texts");
mountTexts(document.getElementById("app"));
