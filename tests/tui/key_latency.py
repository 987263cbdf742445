"""Key-press latency of the TUI while a job runs (issue 6: answered within 50 ms).

Starts `qtune tui` on the demo in tmux, runs stage 3 (`n`), then presses j/k and measures the
time until the selected layer (the histogram panel's title) changes on screen. The figure
includes tmux's own capture time, so it is an upper bound. Run from the repo root after
`cargo build --release`:  python3 tests/tui/key_latency.py
"""
import os, re, subprocess, sys, tempfile, time

QTUNE = os.path.abspath(os.environ.get('QTUNE', 'target/release/qtune'))
tmp = tempfile.mkdtemp()
ses = f'qtune-keys-{os.getpid()}'


def tmux(*a):
    return subprocess.run(['tmux', *a], capture_output=True, text=True).stdout


def selected():
    m = re.search(r'Histogram (\S+)', tmux('capture-pane', '-p', '-t', ses))
    return m.group(1) if m else None


tmux('new-session', '-d', '-s', ses, '-x', '120', '-y', '34',
     f'LANG=C.UTF-8 {QTUNE} tui -c configs/default.yaml --session {tmp}/s.json')
try:
    t0 = time.time()
    while 'stage 1 done' not in tmux('capture-pane', '-p', '-t', ses):
        if time.time() - t0 > 120:
            sys.exit('stage 1 did not finish')
        time.sleep(0.2)
    tmux('send-keys', '-t', ses, 'n')  # stage 3 runs from now on
    time.sleep(2)
    lat = []
    for i in range(20):
        screen = tmux('capture-pane', '-p', '-t', ses)
        busy = 'evaluating' in screen or 'calibrating' in screen
        before, t = selected(), time.time()
        tmux('send-keys', '-t', ses, 'j' if i % 2 == 0 else 'k')
        while selected() == before and time.time() - t < 2:
            pass
        if busy:
            lat.append((time.time() - t) * 1000)
        time.sleep(0.1)
    lat.sort()
    print(f'{len(lat)} key presses while a job ran: median {lat[len(lat) // 2]:.1f} ms, '
          f'max {lat[-1]:.1f} ms (key sent -> screen changed, tmux capture included)')
finally:
    tmux('kill-session', '-t', ses)
