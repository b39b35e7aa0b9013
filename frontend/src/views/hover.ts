// Numbers on hover: any element with `data-hover` shows that text in a box beside the pointer at
// once (a native tooltip waits a second and is easy to miss); the element's title stays for
// assistive technology. One box and three listeners for the whole page.

let box: HTMLElement | null = null;

export function installHover(doc: Document = document): void {
  if (box) return;
  const shown = doc.createElement("div");
  shown.className = "hover-box";
  shown.setAttribute("role", "tooltip");
  shown.hidden = true;
  doc.body.append(shown);
  box = shown;
  doc.addEventListener("mouseover", (e) => {
    const target = e.target instanceof Element ? e.target.closest("[data-hover]") : null;
    const text = target?.getAttribute("data-hover");
    shown.hidden = !text;
    if (text) shown.textContent = text;
  });
  doc.addEventListener("mousemove", (e) => {
    if (shown.hidden) return;
    shown.style.left = `${Math.min(e.clientX + 12, innerWidth - shown.offsetWidth - 4)}px`;
    shown.style.top = `${e.clientY + 16}px`;
  });
  doc.addEventListener("scroll", () => (shown.hidden = true), true);
}
