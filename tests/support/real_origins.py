"""Real origin servers on loopback for the end-to-end tests: nginx (gzip, gzip_static),
Apache httpd (mod_deflate) and a Django application served by Werkzeug.

Each serves the same site (`SITE`) from a fresh directory and runs in the foreground as a
child of the test, on a port found by trying: nginx and Apache cannot report a port the
kernel chose, so a port is picked, and if the server cannot bind it another one is.
`.ci/run` and `make test` install nginx and Apache (Debian packages) and Django (PyPI).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.support.mitm import stop_process

_LIPSUM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
           "incididunt ut labore et dolore magna aliqua. ")
# the files every origin serves, with the media type it should announce
SITE: dict[str, tuple[str, bytes]] = {
    "index.html": ("text/html", (
        "<!doctype html><html><head><title>Real origin</title>"
        '<link rel="stylesheet" href="/static/site.css"></head><body>'
        f"<h1>Hello</h1><p>{_LIPSUM * 20}</p>"
        '<p><a href="mailto:team@example.com">write to us</a></p>'
        "</body></html>\n").encode()),
    "static/site.css": ("text/css", (
        "body { font-family: sans-serif; color: #222; margin: 0 auto; max-width: 40em }\n"
        * 60).encode()),
    "static/app.js": ("application/javascript", (
        "function greet(name) { return 'hello ' + name; }\nconsole.log(greet('edge'));\n"
        * 80).encode()),
    "data.json": ("application/json", (
        '{"items": [' + ", ".join(f'{{"id": {i}, "name": "item {i}"}}' for i in range(200))
        + "]}\n").encode()),
    "notes.txt": ("text/plain", (_LIPSUM * 60).encode()),
}
# pre-compressed copies for nginx's gzip_static (what `gzip -k` leaves next to a file)
GZIP_STATIC = ("static/app.js",)


def write_site(root: Path) -> Path:
    for name, (_, body) in SITE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        # a fixed time, so Last-Modified is the same for every server and run
        os.utime(path, (1_700_000_000, 1_700_000_000))
    for name in GZIP_STATIC:
        gz = root / f"{name}.gz"
        gz.write_bytes(gzip.compress(SITE[name][1], mtime=0))
        os.utime(gz, (1_700_000_000, 1_700_000_000))
    return root


def _free_port() -> int:
    """A port likely free; the server's own bind decides (see `_start_on_a_port`)."""
    return random.randint(20_000, 60_000)


def _listening(port: int) -> bool:
    with contextlib.closing(socket.socket()) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class _Server:
    name = "server"
    port = 0
    proc: subprocess.Popen | None = None

    def _start_on_a_port(self, command, write_config, tmp: Path) -> None:
        """Write the configuration for a port and start; another port if that one is taken."""
        errors = []
        for _ in range(20):
            port = _free_port()
            write_config(port)
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    cwd=tmp)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                if _listening(port):
                    self.proc, self.port = proc, port
                    return
                time.sleep(0.05)
            stop_process(proc)
            errors.append(proc.stdout.read().decode(errors="replace") if proc.stdout else "")
        raise RuntimeError(f"{self.name} did not start:\n" + "\n".join(errors[-3:]))

    cleanup: Path | None = None  # a directory of the server's own, removed when it stops

    def stop(self) -> None:
        if self.cleanup is not None:
            shutil.rmtree(self.cleanup, ignore_errors=True)
            self.cleanup = None
        if self.proc is not None:
            stop_process(self.proc)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


NGINX_CONF = """
daemon off;
worker_processes 1;
user {user};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    gzip on;
    gzip_types text/css application/javascript application/json text/plain;
    gzip_vary on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        expires 60s;
        location /static/ {{ gzip_static on; }}
    }}
}}
"""


class Nginx(_Server):
    """nginx with `gzip on` for the text types and `gzip_static` under /static/."""

    name = "nginx"

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.root = write_site(tmp / "www")
        conf = tmp / "nginx.conf"
        user = "root root" if os.geteuid() == 0 else "nobody nogroup"

        def write(port: int) -> None:
            conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=self.root, user=user))

        self._start_on_a_port([binary, "-p", str(tmp), "-c", str(conf)], write, tmp)


APACHE_CONF = """
ServerRoot {tmp}
PidFile {tmp}/httpd.pid
ErrorLog {tmp}/error.log
LogLevel warn
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule mime_module {modules}/mod_mime.so
LoadModule dir_module {modules}/mod_dir.so
LoadModule filter_module {modules}/mod_filter.so
LoadModule deflate_module {modules}/mod_deflate.so
LoadModule headers_module {modules}/mod_headers.so
LoadModule expires_module {modules}/mod_expires.so
{unixd}
TypesConfig /etc/mime.types
DocumentRoot {root}
DirectoryIndex index.html
<Directory {root}>
    Require all granted
</Directory>
AddOutputFilterByType DEFLATE text/html text/css text/javascript application/javascript
AddOutputFilterByType DEFLATE application/json text/plain
ExpiresActive On
ExpiresDefault "access plus 60 seconds"
"""


class Apache(_Server):
    """Apache httpd with mod_deflate (its default DeflateAlterETag AddSuffix: "-gzip")."""

    name = "apache"

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("apache2") or "/usr/sbin/apache2"
        modules = "/usr/lib/apache2/modules"
        unixd = ""
        if os.geteuid() == 0:
            # httpd refuses to serve as root: its children become www-data, which cannot
            # enter pytest's private temporary directories, so the site lives elsewhere
            unixd = "User www-data\nGroup www-data"
            tmp = Path(tempfile.mkdtemp(prefix="edge-apache-"))
            self.cleanup = tmp
            for path in [tmp, *write_site(tmp / "www").parent.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
        self.root = write_site(tmp / "www")
        conf = tmp / "httpd.conf"

        def write(port: int) -> None:
            conf.write_text(APACHE_CONF.format(tmp=tmp, port=port, root=self.root,
                                               modules=modules, unixd=unixd))

        env_vars = {"APACHE_RUN_DIR": str(tmp), "APACHE_LOCK_DIR": str(tmp)}
        os.environ.update(env_vars)
        self._start_on_a_port([binary, "-f", str(conf), "-DFOREGROUND"], write, tmp)


class Django(_Server):
    """A Django application (GZipMiddleware, ConditionalGetMiddleware, ETags from the
    content) served by Werkzeug's threaded server, in a process of its own."""

    name = "django"

    def __init__(self, tmp: Path) -> None:
        self.root = write_site(tmp / "www")
        port_file = tmp / "port"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.real_origins", "django", str(self.root),
             str(port_file)], cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text())
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        out = self.proc.stdout.read().decode(errors="replace") if self.proc.poll() else ""
        self.stop()
        raise RuntimeError(f"django did not start:\n{out}")


def _serve_django(root: Path, port_file: Path) -> None:
    import django
    from django.conf import settings
    from django.http import FileResponse
    from django.http import Http404
    from django.http import HttpResponse
    from django.urls import re_path
    from django.utils.http import http_date
    from werkzeug.serving import make_server

    def page(request, name: str = ""):
        name = name or "index.html"
        entry = SITE.get(name)
        if entry is None:
            raise Http404(name)
        media, body = entry
        if name.endswith(".txt"):  # a streamed file, the way Django serves downloads
            resp = FileResponse(open(root / name, "rb"), content_type=media)  # noqa: SIM115
        else:
            resp = HttpResponse(body, content_type=f"{media}; charset=utf-8")
        resp["Last-Modified"] = http_date(1_700_000_000)
        resp["Cache-Control"] = "max-age=60"
        return resp

    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="test",
        USE_ETAGS=True,
        MIDDLEWARE=["django.middleware.gzip.GZipMiddleware",
                    "django.middleware.http.ConditionalGetMiddleware"])
    django.setup()
    globals()["urlpatterns"] = [re_path(r"^(?P<name>.*)$", page)]
    from django.core.wsgi import get_wsgi_application

    server = make_server("127.0.0.1", 0, get_wsgi_application(), threaded=True)
    port_file.write_text(str(server.server_port))
    server.serve_forever()


def all_origins() -> list[type[_Server]]:
    return [Nginx, Apache, Django]


if __name__ == "__main__":  # python -m tests.support.real_origins django ROOT PORT_FILE
    threading.current_thread().name = "origin"
    _serve_django(Path(sys.argv[2]), Path(sys.argv[3]))
