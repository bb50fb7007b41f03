// Shared formatting of sizes and times (list rows, home page; detail views may use it too).

const UNITS = ["B", "KB", "MB", "GB"];

/** 0 B, 512 B, 1.5 KB, 20 MB (powers of 1024, one decimal under 10). */
export function formatSize(bytes) {
  let n = Number(bytes) || 0;
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i += 1;
  }
  const digits = i === 0 || n >= 10 ? 0 : 1;
  return n.toFixed(digits) + " " + UNITS[i];
}

/** "just now", "12s ago", "5m ago", "3h ago", "2d ago" relative to now (ms epoch). */
export function relativeTime(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return s + "s ago";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m ago";
  const h = Math.floor(m / 60);
  if (h < 48) return h + "h ago";
  return Math.floor(h / 24) + "d ago";
}

const ABS = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});

/** Local date and time with seconds, plus milliseconds: webhooks often arrive in the same second. */
export function absoluteTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso || "");
  return ABS.format(d) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
