// halo server page: reads /_live/stats and streams chat replies from /v1/chat/completions (plain JS, no build step).
const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const history = [];
// The bubble of each history entry, so that turns the server dropped can be greyed out.
const historyBubbles = [];
const sparkValues = [];
let controller = null;

const keyInput = $("api-key");
keyInput.value = localStorage.getItem("halo-api-key") ?? "";
keyInput.addEventListener("change", () => {
  localStorage.setItem("halo-api-key", keyInput.value);
  restartStats();
});

function authHeaders() {
  const key = keyInput.value.trim();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Reads an SSE body from fetch (EventSource cannot send headers) and calls onData per `data:` record. */
async function readSse(response, onData, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const record = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = record
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data && onData(data) === false) return;
      }
    }
  } finally {
    if (signal?.aborted !== true) reader.cancel().catch(() => {});
  }
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body?.error?.message ?? `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// ---- live stats ----
let statsController = null;

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = `status ${kind}`;
}

function showStats(s) {
  $("model").textContent = s.model ?? "(loading)";
  const label = $("label");
  label.hidden = !s.label;
  label.textContent = s.label ?? "";
  $("backend").textContent = s.backend ? `${s.backend} backend · ${s.contextLength} ctx` : "";
  $("stat-tps").textContent = number.format(s.decodeTokensPerSecond);
  $("stat-prefill").textContent = number.format(s.promptTokensPerSecond);
  $("stat-active").textContent = `${s.active} / ${s.parallel ?? "–"}`;
  $("stat-queued").textContent = `${s.queued}`;
  $("stat-kv").textContent = `${number.format(s.kvUsage * 100)} %`;
  $("stat-kv-detail").textContent = kvDetail(s.kv);
  // Tokens each running generation holds (prompt + answer so far) out of the context length.
  const held = s.contextTokens ?? [];
  $("stat-context").textContent = s.contextLength ? `${held.length ? held.join(", ") : "0"} / ${s.contextLength}` : "–";
  // Speculative decoding (a model loaded with a drafter): tokens per step and how many drafts were accepted.
  const spec = s.speculative;
  $("stat-spec").textContent = spec ? `${number.format(spec.tokensPerStep)} tok/step` : "off";
  $("stat-spec-detail").textContent = spec ? `${spec.label} · ${number.format(spec.acceptanceRate * 100)} % accepted` : "";
  $("stat-requests").textContent = `${s.completedRequests}`;
  $("stat-tokens").textContent = `${s.generatedTokens}`;
  $("stat-updated").textContent = `updated ${new Date().toLocaleTimeString()} · up ${Math.round(s.uptimeSeconds)} s`;
  document.body.dataset.statsUpdates = String(Number(document.body.dataset.statsUpdates ?? 0) + 1);
  setStatus(s.status, s.status === "ready" ? "ready" : "bad");
  sparkValues.push(s.decodeTokensPerSecond);
  if (sparkValues.length > 80) sparkValues.shift();
  drawSpark();
}

/** The engine's KV cache in words: slots held, and bytes (when the backend estimates them) or positions. */
function kvDetail(kv) {
  if (!kv) return "";
  const MIB = 1024 * 1024;
  const slots = `${kv.slotsInUse} / ${kv.maxSequences} slots`;
  if (kv.bytesInUse !== undefined && kv.bytesCapacity !== undefined)
    return `${slots} · ${number.format(kv.bytesInUse / MIB)} / ${number.format(kv.bytesCapacity / MIB)} MiB`;
  return `${slots} · ${kv.positionsInUse} / ${kv.positionsCapacity} positions`;
}

function drawSpark() {
  const canvas = $("spark");
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  const max = Math.max(1, ...sparkValues);
  g.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue("--accent") || "#3b5bdb";
  g.lineWidth = 2;
  g.beginPath();
  sparkValues.forEach((v, i) => {
    const x = (i / 79) * width;
    const y = height - 3 - (v / max) * (height - 6);
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
}

async function followStats() {
  statsController?.abort();
  const own = new AbortController();
  statsController = own;
  while (!own.signal.aborted) {
    try {
      const response = await fetch("/_live/stats", { headers: authHeaders(), signal: own.signal });
      if (!response.ok) {
        setStatus(response.status === 401 ? "API key needed (Settings)" : await errorText(response), "bad");
      } else {
        await readSse(response, (data) => showStats(JSON.parse(data)), own.signal);
      }
    } catch {
      if (own.signal.aborted) return;
      setStatus("disconnected", "bad");
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

function restartStats() {
  void followStats();
}

// ---- chat ----
function addMessage(role, text) {
  const hint = document.querySelector("#messages .hint");
  hint?.remove();
  const el = document.createElement("div");
  el.className = `msg ${role}`;
  el.textContent = text;
  $("messages").append(el);
  el.scrollIntoView({ block: "end" });
  return el;
}

/** A one-line note in the conversation (context full, turns dropped). */
function addNote(text, kind) {
  const el = document.createElement("div");
  el.className = `note ${kind}`;
  el.textContent = text;
  $("messages").append(el);
  return el;
}

/** The server dropped the oldest `count` messages of the conversation to fit its context: forget them here too. */
function forgetOldest(count) {
  history.splice(0, count);
  for (const el of historyBubbles.splice(0, count)) el.classList.add("dropped");
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

async function send(prompt) {
  history.push({ role: "user", content: prompt });
  historyBubbles.push(addMessage("user", prompt));
  const bubble = addMessage("assistant", "");
  bubble.dataset.state = "streaming";
  const text = document.createTextNode("");
  bubble.append(text);
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...history);
  controller = new AbortController();
  setBusy(true);
  let reply = "";
  let meta = "";
  let tokens = 0;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders() },
      body: JSON.stringify({
        messages,
        stream: true,
        stream_options: { include_usage: true },
        temperature: Number($("temperature").value),
        max_tokens: Number($("max-tokens").value),
      }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorText(response));
    const dropped = Number(response.headers.get("x-halo-context-dropped") ?? 0);
    if (dropped > 0) {
      forgetOldest(dropped);
      const note = addNote(
        `Context full: the server dropped the ${dropped === 1 ? "oldest message" : `${dropped} oldest messages`} (greyed out); the model no longer sees them.`,
        "context",
      );
      bubble.before(note);
    }
    await readSse(
      response,
      (data) => {
        if (data === "[DONE]") return false;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const choice = chunk.choices?.[0];
        const piece = choice?.delta?.content;
        if (piece) {
          reply += piece;
          tokens++;
          text.data = reply;
          bubble.dataset.chunks = String(tokens);
          bubble.scrollIntoView({ block: "end" });
        }
        if (choice?.finish_reason && chunk.timings) {
          const t = chunk.timings;
          meta = `${t.predicted_n} tokens · ${number.format(t.predicted_per_second)} tok/s · prompt ${t.prompt_n} tokens in ${number.format(t.prompt_ms)} ms · ${choice.finish_reason}`;
          if (chunk.halo) meta += ` · context ${chunk.halo.context_tokens} / ${chunk.halo.context_length}`;
          if (chunk.halo?.context_full) {
            meta += " (full: answer cut)";
            bubble.dataset.contextFull = "true";
          }
        }
        return true;
      },
      controller.signal,
    );
    history.push({ role: "assistant", content: reply });
    historyBubbles.push(bubble);
  } catch (error) {
    if (controller.signal.aborted) meta = "stopped";
    else {
      bubble.classList.add("error");
      meta = `error: ${error.message}`;
    }
    if (reply) {
      history.push({ role: "assistant", content: reply });
      historyBubbles.push(bubble);
    }
  } finally {
    bubble.dataset.state = "done";
    if (meta) {
      const span = document.createElement("span");
      span.className = "meta";
      span.textContent = meta;
      bubble.append(span);
    }
    controller = null;
    setBusy(false);
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || controller) return;
  $("prompt").value = "";
  void send(prompt);
});
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("stop").addEventListener("click", () => controller?.abort());
$("clear").addEventListener("click", () => {
  history.length = 0;
  historyBubbles.length = 0;
  $("messages").replaceChildren();
});

restartStats();
