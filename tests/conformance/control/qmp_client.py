#!/usr/bin/env python3
"""An independent QMP client (Python standard library only) against `pvmem run --qmp`.

It starts the default machine with a QMP socket, speaks the protocol as any management stack
would (greeting, qmp_capabilities, commands with ids, asynchronous events) and checks what a
user of QEMU's QMP expects: memory devices, requested-size through qom-set, the balloon, hot-plug
of a VFIO stand-in with discard inhibition and memlock, device_del with DEVICE_DELETED, errors
before side effects, and quit. Usage: qmp_client.py PVMEM [DOMAIN.xml]
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
GiB = 1 << 30


class QMP:
    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.next_id = 1

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def greeting(self):
        g = self._read()
        assert "QMP" in g and "version" in g["QMP"] and "capabilities" in g["QMP"], g
        return g

    def send_raw(self, text):
        self.sock.sendall(text.encode() + b"\n")

    def reply(self, want_id=None):
        while True:
            m = self._read()
            if "event" in m:
                assert "timestamp" in m and "seconds" in m["timestamp"], m
                self.events.append(m)
                continue
            if want_id is not None:
                assert m.get("id") == want_id, (m, want_id)
            return m

    def cmd(self, name, **args):
        cid = self.next_id
        self.next_id += 1
        msg = {"execute": name, "id": cid}
        if args:
            msg["arguments"] = args
        self.send_raw(json.dumps(msg))
        return self.reply(cid)

    def ok(self, name, **args):
        r = self.cmd(name, **args)
        assert "return" in r, f"{name}: {r}"
        return r["return"]

    def err(self, name, cls, **args):
        r = self.cmd(name, **args)
        assert "error" in r, f"{name} should fail: {r}"
        assert r["error"]["class"] == cls, f"{name}: class {r['error']['class']} != {cls}: {r}"
        assert r["error"]["desc"], r
        return r["error"]["desc"]

    def wait_event(self, name, pred=lambda d: True, timeout=60.0):
        end = time.time() + timeout
        while time.time() < end:
            for i, e in enumerate(self.events):
                if e["event"] == name and pred(e.get("data", {})):
                    return self.events.pop(i)
            self.sock.settimeout(max(0.1, end - time.time()))
            try:
                m = self._read()
            except socket.timeout:
                break
            if "event" in m:
                self.events.append(m)
        raise AssertionError(f"no {name} event within {timeout}s; saw {[e['event'] for e in self.events]}")


def vmem(q):
    devs = q.ok("query-memory-devices")
    for d in devs:
        if d["type"] == "virtio-mem":
            return d["data"]
    raise AssertionError(f"no virtio-mem device in {devs}")


def wait_plugged(q, size, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        d = vmem(q)
        if d["size"] == size:
            return d
        time.sleep(0.05)
    raise AssertionError(f"plugged size never reached {size}: {vmem(q)}")


def main():
    pvmem = sys.argv[1]
    extra = sys.argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "qmp.sock")
        proc = subprocess.Popen([pvmem, "run", *extra, "--qmp", "unix:" + path],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                if os.path.exists(path) or proc.poll() is not None:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, proc.stdout.read().decode()
            q = QMP(path)
            q.greeting()

            # Nothing but negotiation is allowed first.
            q.err("query-memory-devices", "CommandNotFound")
            assert q.ok("qmp_capabilities") == {}
            q.err("qmp_capabilities", "CommandNotFound")
            names = {c["name"] for c in q.ok("query-commands")}
            for need in ("query-memory-devices", "qom-set", "qom-get", "balloon", "query-balloon",
                         "device_add", "device_del", "system_reset", "quit", "query-memlock",
                         "query-discard", "x-pvmem-audit"):
                assert need in names, f"{need} missing from query-commands"

            d = vmem(q)
            vid = d["id"]
            block = d["block-size"]
            assert d["max-size"] == 4 * GiB and block == 2 * MiB, d
            qom = f"/machine/peripheral/{vid}"

            # Errors come before side effects.
            q.err("qom-set", "GenericError", path=qom, property="requested-size", value=3 * MiB)
            q.err("qom-set", "GenericError", path=qom, property="requested-size", value=8 * GiB)
            q.err("qom-set", "DeviceNotFound", path="/machine/peripheral/nope",
                  property="requested-size", value=2 * GiB)
            q.err("qom-set", "GenericError", path=qom, property="requested-size")
            assert vmem(q)["requested-size"] == d["requested-size"]

            # Grow to 1 GiB: the simulated guest plugs and events follow.
            assert q.ok("qom-set", path=qom, property="requested-size", value=GiB) == {}
            assert q.ok("qom-get", path=qom, property="requested-size") == GiB
            wait_plugged(q, GiB)
            q.wait_event("MEMORY_DEVICE_SIZE_CHANGE", lambda e: e.get("size") == GiB)

            # Shrink to 256 MiB.
            q.ok("qom-set", path=qom, property="requested-size", value=256 * MiB)
            wait_plugged(q, 256 * MiB)

            # Balloon: the guest gives 128 MiB back.
            before = q.ok("query-balloon")["actual"]
            q.ok("balloon", value=before - 128 * MiB)
            q.wait_event("BALLOON_CHANGE", lambda e: e.get("actual") == before - 128 * MiB)
            assert q.ok("query-balloon")["actual"] == before - 128 * MiB
            q.err("balloon", "GenericError", value=0)

            # A VFIO device: uncoordinated discard is disabled, virtio-mem keeps working.
            assert q.ok("query-discard")["disabled"] is False
            q.err("device_add", "GenericError", driver="e1000", id="nic0")
            q.ok("device_add", driver="vfio-pci", id="hostdev0")
            q.err("device_add", "GenericError", driver="vfio-pci", id="hostdev0")
            disc = q.ok("query-discard")
            assert disc["disabled"] is True, disc
            ml = q.ok("query-memlock")
            assert "limit" in ml, ml
            q.ok("qom-set", path=qom, property="requested-size", value=512 * MiB)
            wait_plugged(q, 512 * MiB)
            q.ok("device_del", id="hostdev0")
            q.wait_event("DEVICE_DELETED", lambda e: e.get("device") == "hostdev0")
            assert q.ok("query-discard")["disabled"] is False
            q.err("device_del", "DeviceNotFound", id="hostdev0")

            audit = q.ok("x-pvmem-audit")
            assert audit.get("ok") is True, audit

            # Malformed input gets an error and the session goes on.
            q.send_raw('{"execute": ]')
            r = q.reply()
            assert r["error"]["class"] == "GenericError", r
            q.send_raw('{"execute":"query-balloon","arguments":{},"arguments":{}}')
            r = q.reply()
            assert "duplicate key" in r["error"]["desc"], r

            q.ok("system_reset")
            wait_plugged(q, 512 * MiB, timeout=120)

            q.ok("quit")
            proc.wait(timeout=30)
            assert proc.returncode == 0, f"pvmem run exited {proc.returncode}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("qmp_client: all checks passed")


if __name__ == "__main__":
    main()
