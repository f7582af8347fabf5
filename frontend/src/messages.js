// Messages at the top of the page: every error a person should see, never a blank page.

const box = () => document.getElementById("messages");

export function showMessage(text, kind = "error", { timeoutMs } = {}) {
  const item = document.createElement("div");
  item.className = `message ${kind}`;
  item.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "close";
  close.title = "dismiss";
  close.textContent = "×";
  close.addEventListener("click", () => item.remove());
  item.append(close);
  box().append(item);
  const timeout = timeoutMs ?? (kind === "error" ? 0 : 6000);
  if (timeout) setTimeout(() => item.remove(), timeout);
  return item;
}

export function clearMessages() {
  box().replaceChildren();
}

// Anything thrown and not handled still reaches the person as a message.
export function catchUnhandled() {
  window.addEventListener("error", (event) => showMessage(`unexpected error: ${event.message}`));
  window.addEventListener("unhandledrejection", (event) => {
    const reason = event.reason;
    if (reason && reason.name === "AbortError") return;
    showMessage(reason && reason.message ? reason.message : String(reason));
    event.preventDefault();
  });
}
