"""Runs one command and reports what /usr/bin/time -f '%e %M %U %S %R' would, for machines without
it: on stderr, after the command's own output, one line
  __TIME__ <wall s> <peak RSS KiB> <user s> <sys s> <minor faults>
(resource.getrusage(RUSAGE_CHILDREN) of the command: its largest resident set). Exits with the
command's status. With --timeout S the command is stopped (SIGTERM, SIGKILL 10 s later) after S
seconds; the line is still printed, followed by __TIMEOUT__, and the exit status is 124.
SIGTERM/SIGINT/SIGHUP sent to this wrapper are passed on to the command.

usage: python3 bench/gpu/timed.py [--timeout S] CMD [ARG ...]
"""
import resource, signal, subprocess, sys, time

args = sys.argv[1:]
limit = None
if args[:1] == ["--timeout"]:
    limit, args = float(args[1]), args[2:]
t0 = time.perf_counter()
p = subprocess.Popen(args)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda s, _f: p.send_signal(s))
timed_out = False
try:
    rc = p.wait(timeout=limit)
except subprocess.TimeoutExpired:
    timed_out = True
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    rc = 124
wall = time.perf_counter() - t0
u = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stderr.write(f"__TIME__ {wall:.3f} {u.ru_maxrss} {u.ru_utime:.2f} {u.ru_stime:.2f} {u.ru_minflt}\n")
if timed_out:
    sys.stderr.write("__TIMEOUT__\n")
sys.stderr.flush()
sys.exit(rc if rc >= 0 else 128 - rc)
