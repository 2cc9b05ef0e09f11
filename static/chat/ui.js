// Small pieces both pages use: a confirmation dialog (no window.confirm) and busy buttons.

/** Ask in the page's <dialog id="confirm-dialog">; resolves true when the user confirms. */
export function confirmDialog({ title, text, confirm = "Delete" }) {
  const dialog = document.getElementById("confirm-dialog");
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-text").textContent = text;
  dialog.querySelector("#confirm-ok").textContent = confirm;
  const opener = document.activeElement;
  dialog.returnValue = "cancel";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        opener?.focus?.();
        resolve(dialog.returnValue === "confirm");
      },
      { once: true },
    );
  });
}

/** Disable a button while its request runs, and say so to assistive technology. */
export function setBusy(button, busy) {
  button.disabled = busy;
  button.setAttribute("aria-busy", String(busy));
}
