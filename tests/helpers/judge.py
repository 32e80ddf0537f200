"""A stub OpenAI-compatible judge on loopback: counts requests, fails the first ones, records prompts and settings."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubJudge:
    """Answers /chat/completions; the first `fail_first` requests get HTTP 500."""

    def __init__(self, reply="0.7", fail_first=1):
        self.requests, self.prompts, self.temperatures, self.max_tokens = 0, [], [], set()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests += 1
                if stub.requests <= fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                assert self.headers["Authorization"] == "Bearer test-key" and self.path == "/v1/chat/completions"
                stub.prompts.append(body["messages"][0]["content"])
                stub.temperatures.append(body["temperature"])
                stub.max_tokens.add(body["max_tokens"])
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
