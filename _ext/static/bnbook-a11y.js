// Accessible names for the explorers' widgets (_ext/accessible.py), as ipywidgets renders
// them (not the in-page JavaScript's own sliders, js/dom.js): each slider handle is named after its explorer's title and says its value in words;
// each frame image gets the text of the caption above it as its alt text.
(function () {
  "use strict";

  function text(element) {
    return element ? element.textContent.replace(/\s+/g, " ").trim() : "";
  }

  function nameSlider(handle) {
    // the in-page JavaScript's sliders (js/dom.js) are named and valued by their own code
    if (handle.closest("[data-bnbook-live]")) return;
    const slider = handle.closest(".widget-slider, .jupyter-widget-slider, .widget-hslider")
      || handle.parentElement;
    const explorer = handle.closest(".bnbook-explorer");
    const label = slider && slider.querySelector(".widget-label");
    const name = text(label) || (explorer ? text(explorer.querySelector("b")) : "") || "value";
    if (handle.getAttribute("aria-label") !== name) handle.setAttribute("aria-label", name);
    const readout = slider && slider.querySelector(".widget-readout");
    const value = text(readout) || handle.getAttribute("aria-valuenow") || "";
    if (value && handle.getAttribute("aria-valuetext") !== value) {
      handle.setAttribute("aria-valuetext", value);
    }
  }

  function describeImage(image) {
    if (image.hasAttribute("alt") && image.getAttribute("alt") !== "") return;
    const page = image.parentElement;
    const caption = page ? [...page.children].filter(c => c !== image && !c.contains(image))
      .map(text).filter(Boolean).join(" ") : "";
    image.setAttribute("alt", caption || "the explorer's figure at this setting");
  }

  function fix(root) {
    root.querySelectorAll('.noUi-handle, [role="slider"]').forEach(nameSlider);
    root.querySelectorAll("img.widget-image").forEach(describeImage);
  }

  let pending = false;
  const observer = new MutationObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fix(document); });
  });
  function start() {
    fix(document);
    observer.observe(document.body, {childList: true, subtree: true, characterData: true,
                                     attributes: true, attributeFilter: ["aria-valuenow"]});
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
