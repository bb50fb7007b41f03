// Formatting of sizes, times and latencies for every page: the one place these strings are made.
//
// Two size styles exist on purpose for now, and they are named for what they print: the list and the home page
// use `formatSizeKB` ("1.5 KB"), the detail pane uses `formatSizeKiB` ("1.5 KiB"). Likewise `relativeTime`
// ("5m ago", list and home) and `relativeTimeLong` ("5 minutes ago", detail overview). Unifying them is a visible
// change left to the inspector redesign.

const KB_UNITS = ["B", "KB", "MB", "GB"];

/** 0 B, 512 B, 1.5 KB, 20 MB (powers of 1024, one decimal under 10). List rows and the home page. */
export function formatSizeKB(bytes) {
  let n = Number(bytes) || 0;
  let i = 0;
  while (n >= 1024 && i < KB_UNITS.length - 1) {
    n /= 1024;
    i += 1;
  }
  const digits = i === 0 || n >= 10 ? 0 : 1;
  return n.toFixed(digits) + " " + KB_UNITS[i];
}

/** 512 B, 1.5 KiB, 12 KiB, 3.2 MiB (one decimal under 10 KiB and for MiB). The detail pane and body views. */
export function formatSizeKiB(n) {
  const size = Number(n) || 0;
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(size < 10240 ? 1 : 0)} KiB`;
  return `${(size / 1024 / 1024).toFixed(1)} MiB`;
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

const LONG_STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [30, "day"],
  [12, "month"],
  [Infinity, "year"],
];

/** "just now", "12 seconds ago", "1 minute ago", ... "2 years ago" relative to now (ms epoch). */
export function relativeTimeLong(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const s = Math.round((now - then) / 1000);
  if (s < 5) return "just now";
  let value = s;
  for (const [size, unit] of LONG_STEPS) {
    if (Math.abs(value) < size) return `${value} ${unit}${value === 1 ? "" : "s"} ago`;
    value = Math.floor(value / size);
  }
  return "";
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

/** "4.2 ms" under 10 ms, "37 ms" above; "" when unknown. */
export function formatLatency(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 10 ? ms.toFixed(1) + " ms" : Math.round(ms) + " ms";
}
