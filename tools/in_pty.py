#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal (120x40; stdin, stdout and stderr all on it), prints
everything it wrote, escape sequences included, and exits with its exit code:
  in_pty.py COMMAND [ARGS...]"""
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
child = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
os.close(slave)
output = b""
while True:
    try:
        data = os.read(master, 65536)
    except OSError:  # EIO: the child closed the terminal
        break
    if not data:
        break
    output += data
code = child.wait()
sys.stdout.buffer.write(output)
sys.exit(code)
