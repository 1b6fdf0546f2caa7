"""Client side of tests/cli/serve.sh: drives a running `dsq serve` with the official openai
client and with raw HTTP, and compares its output with `dsq run` / `dsq chat`.

Prints one line per failed check and ends with 'serve-client: N passed, N failed'.
Only loopback addresses are used; every request has a timeout and every loop a fixed count.
"""
import argparse
import http.client
import json
import subprocess
import sys
import threading
import time

from openai import OpenAI, APIStatusError

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: {detail}", flush=True)
    return cond


class Server:
    def __init__(self, port, key, pid):
        self.port, self.key, self.pid = port, key, pid

    def raw(self, method, path, body=None, headers=None, key=True, timeout=60):
        """One request on a fresh connection: (status, parsed JSON or text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = f"Bearer {self.key}"
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data

    def proc_status(self):
        fields = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


def dsq_stdout(args, stdin=None):
    r = subprocess.run(args, input=stdin, capture_output=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"{args}: exit {r.returncode}: {r.stderr.decode()[-400:]}")
    return r.stdout


def run_text(a, prompt, n, extra=()):
    """What `dsq run` adds after echoing the prompt."""
    out = dsq_stdout([a.dsq, "run", a.model, "-p", prompt, "-n", str(n), *extra])
    assert out.startswith(prompt.encode()), out[:80]
    return out[len(prompt.encode()):]


def chat_text(a, user, n, system=None):
    """dsq chat's answer to one user line (it prints the answer and a newline)."""
    extra = ["--system", system] if system else []
    out = dsq_stdout([a.dsq, "chat", a.model, "-n", str(n), "--temp", "0", *extra],
                     stdin=(user + "\n").encode())
    assert out.endswith(b"\n")
    return out[:-1]


def prompt_tokens(a, prompt):
    err = subprocess.run([a.dsq, "run", a.model, "-p", prompt, "-n", "1", "-v"],
                         capture_output=True, timeout=60).stderr.decode()
    line = next(l for l in err.splitlines() if "prompt tokens:" in l)
    return len(line.split("prompt tokens:")[1].split())


def stream_chat(client, **kw):
    pieces, finish, role = [], None, None
    for ch in client.chat.completions.create(stream=True, **kw):
        if not ch.choices:
            continue
        d = ch.choices[0].delta
        if d.role:
            role = d.role
        if d.content:
            pieces.append(d.content)
        if ch.choices[0].finish_reason:
            finish = ch.choices[0].finish_reason
    return role, pieces, finish


def stream_completion(client, **kw):
    pieces, finish, usage = [], None, None
    for ch in client.completions.create(stream=True, **kw):
        if ch.usage:
            usage = ch.usage
        if not ch.choices:
            continue
        if ch.choices[0].text:
            pieces.append(ch.choices[0].text)
        if ch.choices[0].finish_reason:
            finish = ch.choices[0].finish_reason
    return pieces, finish, usage


# ---- the official client against dsq run and dsq chat ---------------------------------------

PROMPTS = ["The meaning of life", "Never", "A computer is"]


def test_client(a, srv, client):
    models = client.models.list()
    check("models.list", [m.id for m in models.data] == ["tiny-v2"], str(models))

    # chat: the same answer as dsq chat, byte for byte, with and without a system prompt
    for system in (None, "Be brief."):
        msgs = ([{"role": "system", "content": system}] if system else []) + \
               [{"role": "user", "content": "What is love?"}]
        r = client.chat.completions.create(model="tiny-v2", messages=msgs, max_tokens=24,
                                           temperature=0)
        want = chat_text(a, "What is love?", 24, system)
        got = r.choices[0].message.content.encode()
        check(f"chat = dsq chat (system {system!r})", got == want, f"{got!r} != {want!r}")
        text = (system + "\n\n" if system else "") + "User: What is love?\n\nAssistant:"
        n_prompt = prompt_tokens(a, text)
        check("chat usage", (r.usage.prompt_tokens, r.usage.completion_tokens,
                             r.usage.total_tokens) == (n_prompt, 24, n_prompt + 24), str(r.usage))
        check("chat finish_reason", r.choices[0].finish_reason == "length",
              r.choices[0].finish_reason)
        check("chat role", r.choices[0].message.role == "assistant")

    # streamed chat: the same text, split in pieces that are each non-empty
    role, pieces, finish = stream_chat(client, model="tiny-v2", max_tokens=24, temperature=0,
                                       messages=[{"role": "user", "content": "What is love?"}])
    want = chat_text(a, "What is love?", 24)
    check("streamed chat text", "".join(pieces).encode() == want, f"{pieces!r}")
    check("streamed chat pieces", len(pieces) >= 5 and all(pieces), f"{len(pieces)} pieces")
    check("streamed chat role and finish", (role, finish) == ("assistant", "length"),
          f"{role} {finish}")

    # greedy completions: what dsq run prints after the prompt, byte for byte
    for p in PROMPTS:
        r = client.completions.create(model="tiny-v2", prompt=p, max_tokens=32, temperature=0)
        want = run_text(a, p, 32)
        check(f"greedy completion = dsq run ({p!r})", r.choices[0].text.encode() == want,
              f"{r.choices[0].text!r} != {want!r}")
        check("completion usage", (r.usage.prompt_tokens, r.usage.completion_tokens) ==
              (prompt_tokens(a, p), 32), str(r.usage))

    # seeded sampling: what dsq run --seed prints, with every sampler option in play
    cases = [
        (dict(temperature=0.8, top_p=0.95, seed=7), {}, ["--temp", "0.8", "--top-p", "0.95",
                                                         "--seed", "7"]),
        (dict(temperature=1.2, seed=3), dict(top_k=20, min_p=0.05),
         ["--temp", "1.2", "--top-k", "20", "--min-p", "0.05", "--seed", "3"]),
        (dict(temperature=0.9, seed=11), dict(repetition_penalty=1.3),
         ["--temp", "0.9", "--repeat-penalty", "1.3", "--seed", "11"]),
    ]
    for kw, extra, args in cases:
        r = client.completions.create(model="tiny-v2", prompt="Never", max_tokens=40,
                                      extra_body=extra, **kw)
        want = run_text(a, "Never", 40, args)
        check(f"seeded sampling = dsq run {' '.join(args)}", r.choices[0].text.encode() == want,
              f"{r.choices[0].text!r} != {want!r}")

    # OpenAI's penalties: zero changes nothing; a strong one changes greedy output
    base = run_text(a, "The meaning of life", 48).decode()
    zero = client.completions.create(model="tiny-v2", prompt="The meaning of life", max_tokens=48,
                                     temperature=0, frequency_penalty=0, presence_penalty=0)
    check("zero penalties = dsq run", zero.choices[0].text == base, zero.choices[0].text)
    pen = client.completions.create(model="tiny-v2", prompt="The meaning of life", max_tokens=48,
                                    temperature=0, frequency_penalty=2, presence_penalty=2)
    check("penalties change greedy output", pen.choices[0].text != base, pen.choices[0].text)

    # stop strings: one that spans two streamed pieces ends the text just before it
    pieces, finish, usage = stream_completion(client, model="tiny-v2", prompt="The meaning of life",
                                              max_tokens=48, temperature=0,
                                              stream_options={"include_usage": True})
    full = "".join(pieces)
    check("streamed completion usage chunk", usage is not None and usage.completion_tokens == 48,
          str(usage))
    k = next((i for i in range(2, len(pieces) - 1)
              if len(pieces[i]) >= 2 and len(pieces[i + 1]) >= 1), None)
    if check("a piece boundary to stop at", k is not None, repr(pieces)):
        stop = pieces[k][-2:] + pieces[k + 1][:1]
        cut = full.index(stop)
        r = client.completions.create(model="tiny-v2", prompt="The meaning of life",
                                      max_tokens=48, temperature=0, stop=[stop, "zzzz"])
        check("completion with stop", (r.choices[0].text, r.choices[0].finish_reason) ==
              (full[:cut], "stop"), f"{r.choices[0].text!r} / {full[:cut]!r} ({stop!r})")
        spieces, sfinish, _ = stream_completion(client, model="tiny-v2", max_tokens=48,
                                                prompt="The meaning of life", temperature=0,
                                                stop=stop)
        check("streamed completion with stop", ("".join(spieces), sfinish) == (full[:cut], "stop"),
              f"{spieces!r}")

    # multi-turn chat reuses the cache of the previous turn, and reuse changes nothing
    first = [{"role": "user", "content": "Tell me a joke."}]
    r1 = client.chat.completions.create(model="tiny-v2", messages=first, max_tokens=20,
                                        temperature=0)
    second = first + [{"role": "assistant", "content": r1.choices[0].message.content},
                      {"role": "user", "content": "Another one."}]
    r2 = client.chat.completions.create(model="tiny-v2", messages=second, max_tokens=20,
                                        temperature=0)
    cached = r2.usage.prompt_tokens_details.cached_tokens
    check("next turn reuses the cache", cached >= r1.usage.prompt_tokens,
          f"cached {cached}, first prompt {r1.usage.prompt_tokens}")
    client.completions.create(model="tiny-v2", prompt="42 is", max_tokens=4, temperature=0)
    r3 = client.chat.completions.create(model="tiny-v2", messages=second, max_tokens=20,
                                        temperature=0)
    check("cold run after other prompt reuses only BOS", r3.usage.prompt_tokens_details.cached_tokens
          == 1, str(r3.usage))
    check("reused cache gives the cold run's answer",
          r3.choices[0].message.content == r2.choices[0].message.content,
          f"{r3.choices[0].message.content!r} != {r2.choices[0].message.content!r}")
    # the template with an assistant turn is the text dsq run gets (EOS written as its token,
    # which the tokenizer turns into the id); chat drops the space after "Assistant:"
    text = (f"User: Tell me a joke.\n\nAssistant: {r1.choices[0].message.content}"
            "<\uff5cend\u2581of\u2581sentence\uff5c>User: Another one.\n\nAssistant:")
    want = run_text(a, text, 20)
    want = want[1:] if want.startswith(b" ") else want
    check("multi-turn chat = dsq run on the rendered template",
          r3.choices[0].message.content.encode() == want,
          f"{r3.choices[0].message.content!r} != {want!r}")


# ---- bad requests ----------------------------------------------------------------------------

def test_bad_requests(a, srv):
    chat, comp = "/v1/chat/completions", "/v1/completions"
    user = [{"role": "user", "content": "hi"}]
    long_prompt = "word " * 1500  # > 1024 tokens
    cases = [
        # name, method, path, body, headers, key, status, message part, param
        ("malformed JSON", "POST", chat, '{"messages": [', None, True, 400, "not valid JSON", None),
        ("not an object", "POST", chat, "[1, 2]", None, True, 400, "must be a JSON object", None),
        ("invalid UTF-8", "POST", comp, b'{"prompt": "\xff\xfe"}', None, True, 400,
         "not valid JSON", None),
        ("missing messages", "POST", chat, {"model": "tiny-v2"}, None, True, 400,
         "'messages' is required", "messages"),
        ("messages not an array", "POST", chat, {"messages": "hi"}, None, True, 400,
         "must be an array", "messages"),
        ("empty messages", "POST", chat, {"messages": []}, None, True, 400, "1 to 4096",
         "messages"),
        ("unknown role", "POST", chat, {"messages": [{"role": "wizard", "content": "x"}]}, None,
         True, 400, "'wizard'", "messages[0].role"),
        ("message without content", "POST", chat, {"messages": [{"role": "user"}]}, None, True,
         400, "'messages[0].content' is required", "messages[0].content"),
        ("content of wrong type", "POST", chat, {"messages": [{"role": "user", "content": 5}]},
         None, True, 400, "must be a string or an array", "messages[0].content"),
        ("temperature a string", "POST", chat, {"messages": user, "temperature": "hot"}, None,
         True, 400, "must be a number, not a string", "temperature"),
        ("negative temperature", "POST", chat, {"messages": user, "temperature": -1}, None, True,
         400, "must be in [0, 2], not -1", "temperature"),
        ("top_p zero", "POST", comp, {"prompt": "x", "top_p": 0}, None, True, 400,
         "must be in (0, 1]", "top_p"),
        ("negative max_tokens", "POST", comp, {"prompt": "x", "max_tokens": -5}, None, True, 400,
         "not -5", "max_tokens"),
        ("huge max_tokens", "POST", chat, {"messages": user, "max_tokens": 10 ** 12}, None, True,
         400, "the context holds 1024 tokens", "max_tokens"),
        ("fractional max_tokens", "POST", comp, {"prompt": "x", "max_tokens": 2.5}, None, True,
         400, "must be an integer", "max_tokens"),
        ("prompt longer than the context", "POST", comp, {"prompt": long_prompt}, None, True, 400,
         "but the context holds 1024", "prompt"),
        ("five stop strings", "POST", comp, {"prompt": "x", "stop": list("abcde")}, None, True,
         400, "at most 4", "stop"),
        ("stop not a string", "POST", comp, {"prompt": "x", "stop": [1]}, None, True, 400,
         "must be a string", "stop"),
        ("n = 2", "POST", comp, {"prompt": "x", "n": 2}, None, True, 400, "'n' must be 1", "n"),
        ("seed a string", "POST", comp, {"prompt": "x", "seed": "7"}, None, True, 400,
         "must be an integer", "seed"),
        ("missing prompt", "POST", comp, {"max_tokens": 3}, None, True, 400,
         "'prompt' is required", "prompt"),
        ("token id out of range", "POST", comp, {"prompt": [1, 99999]}, None, True, 400,
         "token id", "prompt"),
        ("unknown model", "POST", comp, {"prompt": "x", "model": "gpt-4"}, None, True, 404,
         "this server has 'tiny-v2'", "model"),
        ("body over the limit", "POST", comp, {"prompt": "x" * 70000}, None, True, 413,
         "the limit is 65536", None),
        ("no API key", "POST", comp, {"prompt": "x"}, None, False, 401, "API key", None),
        ("wrong API key", "GET", "/v1/models", None, {"Authorization": "Bearer nope"}, False, 401,
         "API key", None),
        ("unknown path", "GET", "/v1/engines", None, None, True, 404, "no such path", None),
        ("wrong method", "GET", chat, None, None, True, 405, "takes POST, not GET", None),
        ("wrong method on models", "DELETE", "/v1/models", None, None, True, 405, "takes GET",
         None),
        ("headers over the limit", "GET", "/v1/models", None, {"X-Big": "y" * 20000}, True, 431,
         "the limit is 16384", None),
        # past the connection's whole buffer: refused by libmicrohttpd itself
        ("headers far over the limit", "GET", "/v1/models", None, {"X-Big": "y" * 60000}, True,
         431, None, None),
    ]
    for name, method, path, body, headers, key, status, msg, param in cases:
        try:
            got, data = srv.raw(method, path, body, headers, key)
        except OSError as e:
            check(f"bad request: {name}", False, f"connection error {e}")
            continue
        if not check(f"bad request: {name}: status", got == status, f"{got}, expected {status}; "
                     f"{data!r:.300}"):
            continue
        if msg is None:
            continue
        err = data.get("error", {}) if isinstance(data, dict) else {}
        check(f"bad request: {name}: body", msg in err.get("message", "") and
              isinstance(err.get("type"), str) and err.get("param") == param,
              f"{data!r:.300}")
        # the server keeps serving after each
        st, h = srv.raw("GET", "/health")
        check(f"serving after: {name}", st == 200 and h.get("status") == "ok", f"{st} {h!r:.100}")
    # the openai client sees the same errors as exceptions with the status
    client = OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key=srv.key, max_retries=0,
                    timeout=60)
    try:
        client.chat.completions.create(model="tiny-v2", messages=user, temperature=7)
        check("client sees 400", False, "no exception")
    except APIStatusError as e:
        check("client sees 400", e.status_code == 400 and "temperature" in str(e), str(e))


# ---- load: concurrent clients, streaming and early disconnects ------------------------------

def load_round(srv, expected, clients, per_client, max_disconnect_tokens):
    """Each client sends per_client requests of four kinds in turn; returns (errors, disconnects)."""
    errors, disconnects = [], [0]
    lock = threading.Lock()

    def one(ci, k):
        kind = (ci + k) % 4
        p = PROMPTS[(ci + k) % len(PROMPTS)]
        if kind == 0:  # non-streaming greedy completion
            st, d = srv.raw("POST", "/v1/completions",
                            {"prompt": p, "max_tokens": 32, "temperature": 0})
            ok = st == 200 and d["choices"][0]["text"] == expected[("greedy", p)]
            return ok, f"{st} {d!r:.200}"
        if kind == 1:  # streaming chat
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
            conn.request("POST", "/v1/chat/completions", json.dumps(
                {"messages": [{"role": "user", "content": "What is love?"}], "max_tokens": 24,
                 "temperature": 0, "stream": True}),
                {"Authorization": f"Bearer {srv.key}", "Content-Type": "application/json"})
            r = conn.getresponse()
            text, done = "", False
            for line in r.read().decode().split("\n\n"):
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    c = json.loads(line[6:])["choices"]
                    text += c[0]["delta"].get("content") or "" if c else ""
            conn.close()
            return r.status == 200 and done and text == expected["chat"], f"{text!r}"
        if kind == 2:  # seeded sampling
            st, d = srv.raw("POST", "/v1/completions",
                            {"prompt": p, "max_tokens": 24, "temperature": 0.8, "seed": 5})
            ok = st == 200 and d["choices"][0]["text"] == expected[("seeded", p)]
            return ok, f"{st} {d!r:.200}"
        if k % 8 == 7:  # a non-streaming client that gives up waiting
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
            conn.request("POST", "/v1/completions", json.dumps(
                {"prompt": p, "max_tokens": max_disconnect_tokens, "temperature": 0}),
                {"Authorization": f"Bearer {srv.key}", "Content-Type": "application/json"})
            time.sleep(0.2)
            conn.sock.close()
            conn.close()
            with lock:
                disconnects[0] += 1
            return True, ""
        # a streaming client that reads two events and hangs up
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        conn.request("POST", "/v1/completions", json.dumps(
            {"prompt": p, "max_tokens": max_disconnect_tokens, "temperature": 0, "stream": True}),
            {"Authorization": f"Bearer {srv.key}", "Content-Type": "application/json"})
        r = conn.getresponse()
        r.fp.readline()
        r.fp.readline()
        conn.sock.close()
        conn.close()
        with lock:
            disconnects[0] += 1
        return r.status == 200, str(r.status)

    def client_loop(ci):
        for k in range(per_client):
            try:
                ok, why = one(ci, k)
            except Exception as e:  # a lost request shows up here
                ok, why = False, repr(e)
            if not ok:
                with lock:
                    errors.append(f"client {ci} request {k}: {why}")

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if any(t.is_alive() for t in threads):
        errors.append("a client did not finish within 300 s")
    return errors, disconnects[0]


def wait_idle(srv, seconds=30):
    """Waits until nothing is queued or running (a cancelled job stops at its next token)."""
    end = time.time() + seconds
    while time.time() < end:
        st, h = srv.raw("GET", "/health")
        if st == 200 and h["waiting"] == 0 and h["running"] == 0:
            return True
        time.sleep(0.05)
    return False


def log_lines(a):
    """The server's log so far, a request a line."""
    with open(a.log, errors="replace") as f:
        return f.readlines()


# tokens a client that hangs up early asks for: near the server's 1024-token context, so that
# generating all of them takes far longer than the hang-up (the tiny model decodes thousands of
# tokens a second)
HANGUP_TOKENS = 900


def test_load(a, srv):
    expected = {"chat": chat_text(a, "What is love?", 24).decode()}
    for p in PROMPTS:
        expected[("greedy", p)] = run_text(a, p, 32).decode()
        expected[("seeded", p)] = run_text(a, p, 24, ["--temp", "0.8", "--seed", "5"]).decode()
    # warm-up: every thread, arena and buffer the load uses exists before the first measurement
    errors, _ = load_round(srv, expected, 8, 4, HANGUP_TOKENS)
    check("load warm-up", not errors, "; ".join(errors[:5]))
    check("idle after warm-up", wait_idle(srv))
    rss0, threads0 = srv.proc_status()
    n_lines = len(log_lines(a))
    t0 = time.time()
    errors, disconnects = load_round(srv, expected, 8, 20, HANGUP_TOKENS)
    took = time.time() - t0
    check("load: 8 clients x 20 requests, none lost, every answer right", not errors,
          f"{len(errors)} errors: " + "; ".join(errors[:5]))
    check("load: some clients hung up early", disconnects == 40, str(disconnects))
    check("idle after load", wait_idle(srv))
    rss1, threads1 = srv.proc_status()
    # every hang-up ended its generation: cancelled before its last token, or, now and then,
    # run to the limit because the server had not seen the hang-up yet (it sees one when
    # libmicrohttpd next polls that connection, measured at up to ~520 tokens here, and the
    # tiny model decodes 900 tokens in a fraction of a second). Cancellation that did not work
    # would leave every hang-up running to the limit; at most a tenth may.
    lines = log_lines(a)[n_lines:]
    gen = [int(l.split(" completion=")[1].split()[0]) for l in lines if " completion=" in l]
    early = [l for l in lines if l.rstrip().endswith(" cancelled") and
             int(l.split(" completion=")[1].split()[0]) < HANGUP_TOKENS]
    ran_out = [n for n in gen if n == HANGUP_TOKENS]
    check("load: every hang-up ends its generation",
          len(early) + len(ran_out) == disconnects and len(ran_out) <= disconnects // 10,
          f"{len(early)} cancelled early and {len(ran_out)} run to the limit of {disconnects}; "
          f"tokens {gen}")
    print(f"load: 160 requests in {took:.1f} s; RSS {rss0} -> {rss1} kB, threads {threads0} -> "
          f"{threads1}", flush=True)
    check("load: no thread growth", threads1 == threads0, f"{threads0} -> {threads1}")
    # a leak of even 100 bytes per request would show as 16 kB over 160; 2 MiB leaves room
    # for the allocator's own bookkeeping only
    if not a.no_rss_check:
        check("load: no memory growth", rss1 - rss0 < 2048, f"{rss0} -> {rss1} kB")


def test_limits(a, srv):
    """Against a server started with --timeout 1 --max-connections 4 --queue 1 and no key."""
    import socket

    def connect():
        return socket.create_connection(("127.0.0.1", srv.port), timeout=10)

    def closed_by_server(sock, seconds):
        sock.settimeout(seconds)
        try:
            while sock.recv(4096):
                pass
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    # a client that stops in the middle of its headers holds nothing: others are served, and
    # its connection is closed after the idle timeout
    slow = connect()
    slow.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    st, _ = srv.raw("GET", "/v1/models", key=False)
    check("served beside a slow client", st == 200, str(st))
    t0 = time.time()
    check("slow client closed after the idle timeout", closed_by_server(slow, 10) and
          time.time() - t0 < 5, f"{time.time() - t0:.1f} s")
    slow.close()
    # --queue 1: with one request running and one waiting, the next gets 429
    results = {}

    def post(name):
        results[name] = srv.raw("POST", "/v1/completions", {"prompt": "Once", "max_tokens": 200,
                                                           "temperature": 0}, key=False)

    def wait_health(cond):
        for _ in range(500):
            st, h = srv.raw("GET", "/health", key=False)
            if st == 200 and cond(h):
                return True
            time.sleep(0.01)
        return False

    first = threading.Thread(target=post, args=("first",))
    first.start()
    check("first request runs", wait_health(lambda h: h["running"] == 1))
    second = threading.Thread(target=post, args=("second",))
    second.start()
    check("second request waits", wait_health(lambda h: h["waiting"] == 1))
    st, d = srv.raw("POST", "/v1/completions", {"prompt": "Once", "max_tokens": 5}, key=False)
    check("queue full: 429", st == 429 and d["error"]["code"] == "queue_full", f"{st} {d!r:.200}")
    first.join(120)
    second.join(120)
    for name in ("first", "second"):
        st, d = results.get(name, (None, None))
        check(f"{name} request answered", st == 200 and d["usage"]["completion_tokens"] == 200,
              f"{st} {d!r:.200}")
    # the connection limit: one more connection gets no answer while the limit is open
    held = [connect() for _ in range(4)]
    for h in held:
        h.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        h.recv(4096)  # answered; the connection stays open (keep-alive)
    extra = connect()
    extra.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    check("fifth connection refused", closed_by_server(extra, 5))
    extra.close()
    for h in held:
        h.close()
    ok = False
    for _ in range(50):  # the server notices the closed connections within its poll
        try:
            ok = srv.raw("GET", "/health", key=False)[0] == 200
        except OSError:
            ok = False
        if ok:
            break
        time.sleep(0.1)
    check("served again once connections close", ok)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsq", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", default="")
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--log", required=True, help="the server's stderr")
    ap.add_argument("--only", choices=["client", "bad", "load", "limits"])
    ap.add_argument("--no-rss-check", action="store_true",
                    help="a sanitizer build, whose allocator holds freed memory back")
    a = ap.parse_args()
    srv = Server(a.port, a.key, a.pid)
    client = OpenAI(base_url=f"http://127.0.0.1:{a.port}/v1", api_key=a.key or "none",
                    max_retries=0, timeout=60)
    for name, fn in (("client", lambda: test_client(a, srv, client)),
                     ("bad", lambda: test_bad_requests(a, srv)),
                     ("load", lambda: test_load(a, srv)),
                     ("limits", lambda: test_limits(a, srv))):
        if a.only == name or (a.only is None and name != "limits"):
            try:
                fn()
            except Exception as e:
                check(f"{name} tests", False, repr(e))
    print(f"serve-client: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
