"""What Lambda gives a function, reproduced on this machine for the benchmark.

- CPU: Lambda allots CPU in proportion to memory, a full vCPU at 1,769 MB
  (AWS Lambda Developer Guide, "Configure Lambda function memory"). A
  process is held to that share with the cgroup v1 CPU controller:
  `cpu.cfs_quota_us` of a 100,000 us period (128 MB: 7,236 us). Needs root
  and /sys/fs/cgroup/cpu; every group made here is removed on exit.
- TLS: real AWS endpoints are HTTPS. `TlsTerminator` listens on 127.0.0.1
  with a certificate from a throwaway CA (made with openssl) and pipes the
  plain bytes to the latency proxy, so a client pays the handshake a cold
  start pays against AWS. The auditor trusts the CA through SSL_CERT_FILE,
  botocore (Custodian) through AWS_CA_BUNDLE.
"""

import asyncio
import os
import ssl
import subprocess
import threading
import uuid
from pathlib import Path

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
FULL_VCPU_MB = 1769


def quota_us(memory_mb):
    """The CFS quota, per 100 ms period, of a function with `memory_mb`."""
    return round(memory_mb / FULL_VCPU_MB * PERIOD_US)


def can_cap():
    return os.geteuid() == 0 and (CGROUP_CPU / "cgroup.procs").exists()


class CpuShare:
    """A cgroup v1 CPU group holding its processes to `memory_mb`'s share.
    Use as a context manager; `preexec` puts a child in it before exec."""

    def __init__(self, memory_mb):
        self.memory_mb = memory_mb
        self.path = CGROUP_CPU / f"replica-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def __enter__(self):
        self.path.mkdir()
        (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (self.path / "cpu.cfs_quota_us").write_text(str(quota_us(self.memory_mb)))
        return self

    def preexec(self):
        """For subprocess.Popen(preexec_fn=...): the child joins the group."""
        procs = str(self.path / "cgroup.procs")

        def join():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        return join

    def throttled(self):
        """(periods throttled, seconds throttled) so far."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return int(stat["nr_throttled"]), int(stat["throttled_time"]) / 1e9

    def __exit__(self, *exc):
        # Anything left (a process that outlived its run) goes back to the root group.
        for pid in (self.path / "cgroup.procs").read_text().split():
            try:
                (CGROUP_CPU / "cgroup.procs").write_text(pid)
            except OSError:
                pass
        self.path.rmdir()


def make_ca(workdir):
    """A throwaway CA and a certificate for 127.0.0.1 signed by it; (ca.pem,
    cert.pem, key.pem)."""
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = d / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(ca_key),
        "-out", str(ca), "-days", "2", "-subj", "/CN=replica-auditor bench CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
        "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


class TlsTerminator:
    """HTTPS on 127.0.0.1 in front of a plain HTTP upstream (the latency
    proxy), in a thread of its own; counts handshakes."""

    def __init__(self, upstream_port, cert, key):
        self.upstream_port = upstream_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.handshakes = 0
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.context)
            )
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        started.wait(10)
        self.url = f"https://127.0.0.1:{self.port}"

    async def _client(self, reader, writer):
        self.handshakes += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                pass
            finally:
                try:
                    dst.close()
                except Exception:  # noqa: BLE001  (already closed by the other side)
                    pass

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self):
        def close():
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self.thread.join(10)
