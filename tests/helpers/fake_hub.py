"""A local stand-in for the few Hub endpoints `huggingface_hub` calls to create a repo, a branch and a commit.

It answers every upload as a "regular" (inline, base64) file, so a commit carries the files' bytes in its payload
and the test can compare them with the folder. Anything else is answered 404 and recorded in `unexpected`.
"""

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeHub:
    repos: dict = field(default_factory=dict)  # repo id -> {"private": bool, "branches": {name: {path: bytes}}}
    commits: list = field(default_factory=list)  # (repo id, revision, message)
    unexpected: list = field(default_factory=list)
    validated_cards: list = field(default_factory=list)
    fail_commits: bool = False  # answer every commit with a 500, as an interrupted upload
    url: str = ""


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _reply(self, status: int, body: dict | None = None):
            data = json.dumps(body or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self):
            if self.path == "/api/agent-harnesses":  # huggingface_hub's user-agent detail, fetched once a day
                return self._reply(200, {"harnesses": []})
            hub.unexpected.append(("GET", self.path))
            self._reply(404, {"error": "not found"})

        def do_POST(self):
            body = self._body()
            if self.path == "/api/validate-yaml":  # the card's metadata is checked before a commit that adds it
                hub.validated_cards.append(json.loads(body).get("content", ""))
                return self._reply(200, {"errors": [], "warnings": []})
            if self.path == "/api/repos/create":
                request = json.loads(body)
                repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else (
                    request["name"])
                private = request.get("private", request.get("visibility") == "private")
                hub.repos.setdefault(repo_id, {"private": private, "branches": {"main": {}}})
                return self._reply(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo_id})
            match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit|branch)/([^/?]+)(\?.*)?", self.path)
            if match is None or match.group(1) not in hub.repos:
                hub.unexpected.append(("POST", self.path))
                return self._reply(404, {"error": "not found"})
            repo_id, action, revision = match.group(1), match.group(2), match.group(3)
            repo = hub.repos[repo_id]
            if action == "branch":
                repo["branches"].setdefault(revision, dict(repo["branches"]["main"]))
                return self._reply(200, {})
            if action == "preupload":
                files = json.loads(body)["files"]
                modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                return self._reply(200, {"files": modes})
            if hub.fail_commits:
                return self._reply(500, {"error": "the server went away"})
            if revision not in repo["branches"]:
                return self._reply(404, {"error": f"no branch {revision}"})
            message, files = "", {}
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "header":
                    message = item["value"]["summary"]
                elif item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                else:
                    hub.unexpected.append(("commit item", item["key"]))
            repo["branches"][revision].update(files)
            hub.commits.append((repo_id, revision, message))
            oid = f"{len(hub.commits):040x}"
            return self._reply(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid})

    return Handler


class running_fake_hub:
    """`with running_fake_hub() as hub:` serves on 127.0.0.1 (a free port) until the block ends."""

    def __enter__(self) -> FakeHub:
        self.hub = FakeHub()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.hub))
        self.hub.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self.hub

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
