// The audio explorer: a player for each clip of the sequences matching an AimQL audios query
// at one step (the clip's bytes are fetched only when it is played).

import { fmtNumber, h } from "../dom.js";
import { objectError, objectUrl, sequenceTitle } from "../explorer.js";
import { mountGrid } from "./grid.js";

export const AUDIOS_DEFAULTS = { q: "", step: "", group_by: "run.hash" };

export function mountAudios(container, where = {}) {
  return mountGrid(container, "audios", {
    defaults: AUDIOS_DEFAULTS,
    noun: "audio clip",
    countAttr: "audioCount",
    placeholder: "AimQL audios query, e.g. audios.name == 'samples'",
    emptyHint: "This repository has no audio yet: track some with run.track(aim.Audio(samples, rate=16000), name=...).",
    card(seq, run, rec) {
      const url = objectUrl(seq, rec.index);
      const player = h("audio", { controls: true, preload: "none", src: url });
      const where = `${sequenceTitle(seq, run, "audios")} · step ${fmtNumber(seq.step)} · #${rec.index}` +
        ` · ${rec.format}${rec.rate ? ` · ${rec.rate.toLocaleString("en-US")} Hz` : ""}`;
      const el = h("figure", { class: "audio-card" },
        h("figcaption", {}, h("b", {}, rec.caption || seq.name),
          h("span", { class: "where", title: where }, where)),
        player);
      player.addEventListener("error", async () => {
        player.replaceWith(h("div", { class: "broken" }, `cannot play this clip: ${(await objectError(url)) || "the browser cannot decode it"}`));
      });
      return { el, target: null };
    },
  }, where);
}
