// jsdom lacks a few browser APIs that Ant Design Vue touches.
if (!window.matchMedia) {
  window.matchMedia = (query) => ({
    matches: false, media: query, onchange: null, addListener() {}, removeListener() {},
    addEventListener() {}, removeEventListener() {}, dispatchEvent: () => false,
  })
}
if (!window.ResizeObserver) {
  window.ResizeObserver = class { observe() {} unobserve() {} disconnect() {} }
}
// jsdom implements getComputedStyle without pseudo-elements and logs "Not implemented" when asked.
const computed = window.getComputedStyle.bind(window)
window.getComputedStyle = (elt) => computed(elt)
