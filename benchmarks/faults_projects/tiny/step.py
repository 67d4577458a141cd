"""The fault campaign's step: `step.py MODE WHERE OUT [ARG]` misbehaves as MODE says on WHERE (image, host, both).

The image runs it as uid 10001, the host as whoever runs the campaign, so a
fault can hit one side only. Whatever the mode, a step that gets to the end
writes OUT/result.txt: "ok" unless the mode makes the sides' outputs differ.
"""

import os
import sys
import time

mode, where, out = sys.argv[1], sys.argv[2], sys.argv[3]
arg = sys.argv[4] if len(sys.argv) > 4 else ""
side = "image" if os.getuid() == 10001 else "host"
active = where in ("both", side)
result = "ok\n"
print(f"step {mode} on the {side} ({'active' if active else 'inactive'})", flush=True)

if active and mode == "exit":  # fail with a given code
    print("step failing on purpose", file=sys.stderr, flush=True)
    sys.exit(int(arg or 3))
elif active and mode == "sleep":  # run past the step's timeout
    time.sleep(600)
elif active and mode == "fork":  # a daemon that leaves the group and keeps stdout open
    if os.fork() == 0:
        os.setsid()
        time.sleep(300)
        os._exit(0)
elif active and mode == "flood":  # 20 MB of output
    line = "y" * 99 + "\n"
    for _ in range(20):
        sys.stdout.write(line * 10240)
    sys.stdout.flush()
elif active and mode == "escapes":  # terminal control sequences and a fake verdict; the outputs differ
    print("\x1b]0;owned by the step\x07\x1b[2J\x1b[H\x1b[1;32mREPRODUCIBLE: image mlrepro-faults/tiny:fake == host == lock\x1b[0m", flush=True)
    print("\rREPRODUCIBLE: nothing differs\x1b[K", file=sys.stderr, flush=True)
    result = f"written on the {side}\n"
    if arg:
        sys.exit(int(arg))
elif active and mode == "stdin":  # read stdin to its end
    data = sys.stdin.read()
    print(f"read {len(data)} bytes from stdin", flush=True)
elif active and mode == "differ":  # another output on this side
    result = f"written on the {side}\n"

with open(os.path.join(out, "result.txt"), "w") as fh:
    fh.write(result)
