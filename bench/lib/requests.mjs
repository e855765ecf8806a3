// Signed webhook requests for one server, prepared before the clock starts: bench/intake signs
// them itself, or bench/loadgen-agent.mjs does on the machine it drives the load from.

/** Workflow job ids from `first` on, never one twice (shared by every server of a bench). */
export function jobIds(first = 1) {
  let n = first;
  return {
    next: () => n++,
    /** The next id that would be handed out. */
    peek: () => n,
    /** Never hand out an id below `to` (ids another process has used). */
    raise: (to) => {
      n = Math.max(n, to);
    },
  };
}

/**
 * Requests for one server. Hangar needs every request to be a new delivery, so its supply is
 * prepared ahead for a phase (at a generous rate guess) and, if the server outruns the guess,
 * built on the fly (counted in `builtLate`: that CPU then lands in the load generator's column).
 * The bare route ignores the content, so it cycles through one set (`cycle`).
 */
export class SignedRequests {
  /** `template` from payload.mjs queuedTemplate(); `ids` from jobIds(). */
  constructor({ template, secret, url, path, ids, cycle = false }) {
    this.template = template;
    this.secret = secret;
    this.host = new URL(url).host;
    this.path = path;
    this.ids = ids;
    this.cycle = cycle;
    this.list = [];
    this.at = 0;
    this.builtLate = 0;
  }
  build() {
    return this.template.request(this.secret, this.host, this.path, this.ids.next());
  }
  /** Makes sure `n` unsent requests are ready (cycling: `n` in all). */
  prepare(n) {
    this.list = this.list.slice(this.cycle ? 0 : this.at);
    if (!this.cycle) this.at = 0;
    while (this.list.length - (this.cycle ? 0 : this.at) < n) this.list.push(this.build());
  }
  next() {
    if (this.cycle) return this.list[this.at++ % this.list.length];
    if (this.at < this.list.length) return this.list[this.at++];
    this.builtLate++;
    return this.build();
  }
}
