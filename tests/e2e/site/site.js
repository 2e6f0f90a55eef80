// The customer site's own script: its widget preferences, and a record of the chat's states.
window.tiledeskSettings = { align: "left", marginX: "24px" };
window.__bridgeStates = [];
document.addEventListener("tiledesk-bridge:change", function (event) {
  var detail = event.detail;
  window.__bridgeStates.push(detail);
  document.getElementById("bridge-state").textContent =
    detail.status + (detail.error ? " (" + detail.error + ")" : "") +
    (detail.user ? ": " + detail.user.firstname : "");
});
