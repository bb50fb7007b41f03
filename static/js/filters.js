// The filter bar: method, free text, signature verdict, duplicates only. Filters go to the list API as query
// parameters; live rows are checked here for everything but text (text search runs on the server, see inspector.js).

export class Filters {
  constructor(onChange) {
    this.q = document.getElementById("f-q");
    this.method = document.getElementById("f-method");
    this.verification = document.getElementById("f-verification");
    this.duplicate = document.getElementById("f-duplicate");
    this.onChange = onChange;
    let typing = null;
    this.q.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => this.onChange(), 200);
    });
    this.q.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        clearTimeout(typing);
        this.onChange();
      }
    });
    for (const control of [this.method, this.verification, this.duplicate]) {
      control.addEventListener("change", () => this.onChange());
    }
  }

  get text() {
    return this.q.value.trim();
  }

  /** URLSearchParams for GET /api/endpoints/{id}/requests. */
  params() {
    const p = new URLSearchParams();
    if (this.method.value) p.set("method", this.method.value);
    if (this.text) p.set("q", this.text);
    if (this.verification.value) p.set("verification", this.verification.value);
    if (this.duplicate.checked) p.set("duplicate", "true");
    return p;
  }

  active() {
    return this.params().toString() !== "";
  }

  /** Client-side check of a summary against the filters the client can judge (not text). */
  matchesLocally(summary) {
    if (this.method.value && summary.method !== this.method.value) return false;
    const status = summary.verification ? summary.verification.status : "unconfigured";
    if (this.verification.value && status !== this.verification.value) return false;
    if (this.duplicate.checked && summary.duplicate_of == null) return false;
    return true;
  }
}
