/**
 * The entry of the bundle the pages load (js/build.js makes it): `window.bnlibjs`, and the
 * playground and explorers mounted on every element that asks for one.
 *
 * A chapter asks with an empty element, e.g. `<div data-bnbook-live="eps"></div>` (in a
 * Markdown cell: Jupyter shows nothing for it). Kinds: "playground", "eps", "momentum",
 * "batch-size". Labels come from the page's language, `<html lang>`.
 */

import { ONE_VALUE_ERROR, backward, batchStats, forward } from "./bnlib.js";
import { batchSizeExplorer, epsExplorer, momentumExplorer } from "./explorers.js";
import { translator } from "./i18n.js";
import { playground } from "./playground.js";
import * as simulate from "./simulate.js";

const KINDS = {
  playground,
  eps: epsExplorer,
  momentum: momentumExplorer,
  "batch-size": batchSizeExplorer,
};

/** Mounts every element of `root` that has a data-bnbook-live kind; returns the instances. */
export function mountAll(root = document) {
  const t = translator(document.documentElement.lang);
  const mounted = [];
  root.querySelectorAll("[data-bnbook-live]").forEach((node) => {
    const make = KINDS[node.dataset.bnbookLive];
    if (!make || node.dataset.bnbookMounted) return;
    node.dataset.bnbookMounted = "true";
    mounted.push(make(node, t));
  });
  return mounted;
}

const bnlibjs = {
  forward,
  backward,
  batchStats,
  ONE_VALUE_ERROR,
  simulate,
  /** The playground and explorers on this page, in page order (for the curious, and tests). */
  instances: [],
  /** Mounts the elements asking for one under `root` (added later): returns the new ones. */
  mount: (root) => mountAll(root),
};
window.bnlibjs = bnlibjs;

const start = () => bnlibjs.instances.push(...mountAll());
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
