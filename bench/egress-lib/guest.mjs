// What the guest runs (the test image's /init runs the fw_cfg `cmd` file instead of the runner)
// and how its console lines are read back. busybox only: `wget -T` segfaults in busybox 1.35,
// so every wget is wrapped in `timeout`. Times come from /proc/uptime (10 ms steps): a
// cross-check only, the bench's figure is the server's, on the host's clock.
import { PRIVATE_IP, SERVER_IP } from './topology.mjs';

const TAG = /^[a-z0-9-]{1,40}$/;

/**
 * The guest's script: the isolation check (one GET to the private address: answered with
 * masquerade only, refused at once with the rules), then `downloads` GETs of the blob, each
 * printed as a line. `tag` goes into every URL so the server's records can be matched to the VM.
 */
export function guestScript({ tag, downloads, perDownloadTimeoutS }) {
  if (!TAG.test(tag)) throw new TypeError(`bad tag ${tag}`);
  return `
now() { read -r up _ < /proc/uptime; echo "$up"; }
echo "EGRESS-READY $(now)"
t0=$(now)
timeout 10 wget -q -O /tmp/priv "http://${PRIVATE_IP}/private?tag=${tag}" 2>/tmp/err
rc=$?
t1=$(now)
echo "EGRESS-PRIVATE rc=$rc t0=$t0 t1=$t1 body=$(head -c 40 /tmp/priv 2>/dev/null | tr -dc 'a-z-') err=$(head -c 160 /tmp/err | tr '\\n' ' ')"
i=1
while [ $i -le ${downloads} ]; do
  t0=$(now)
  timeout ${perDownloadTimeoutS} wget -q -O /dev/null "http://${SERVER_IP}/blob?tag=${tag}-$i"
  rc=$?
  t1=$(now)
  echo "EGRESS-GET i=$i rc=$rc t0=$t0 t1=$t1"
  i=$((i + 1))
done
echo EGRESS-DONE
`;
}

/**
 * The guest's lines from its console log: { ready, private, gets: [{ i, rc, t0, t1 }], done },
 * and the kernel's clocksource (the last "Switched to clocksource", "TSC unstable" if it said so):
 * the guest's own times are only as good as that clock.
 */
export function parseConsole(text) {
  const out = { ready: null, private: null, gets: [], done: false, clocksource: null, tscUnstable: false };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    let m;
    if ((m = /clocksource: Switched to clocksource (\S+)/.exec(line))) out.clocksource = m[1];
    else if (/Marking TSC unstable/.test(line)) out.tscUnstable = true;
    else if ((m = /^EGRESS-READY (\S+)/.exec(line))) out.ready = Number(m[1]);
    else if ((m = /^EGRESS-PRIVATE rc=(\d+) t0=(\S+) t1=(\S+) body=(\S*) err=(.*)$/.exec(line))) {
      out.private = { rc: Number(m[1]), ms: (Number(m[3]) - Number(m[2])) * 1000, body: m[4], err: m[5].trim() };
    } else if ((m = /^EGRESS-GET i=(\d+) rc=(\d+) t0=(\S+) t1=(\S+)/.exec(line))) {
      out.gets.push({ i: Number(m[1]), rc: Number(m[2]), t0: Number(m[3]), t1: Number(m[4]) });
    } else if (line.startsWith('EGRESS-DONE')) out.done = true;
  }
  return out;
}
