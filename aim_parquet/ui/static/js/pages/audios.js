// The audio explorer page (/audios?q=AIMQL&step=N&group_by=FIELD).

import { markNav } from "../dom.js";
import { mountAudios } from "../views/audios.js";

markNav("audios");
mountAudios(document.getElementById("app"));
