// freeaction play page: plain JS, no dependencies. Messages: freeaction_gym/web/protocol.py.
"use strict";

const REPEAT_MS = 100;          // held keys repeat at this fixed period
const $ = (id) => document.getElementById(id);
const state = {
  ws: null, moves: {}, bank: {}, held: [], timer: null, nextId: 1, sent: new Map(),
  paused: false, lastKey: " ", psnr: [], ssim: [], frames: 0, latencies: [], lastFrame: null,
  errors: [], done: false, sampling: null,
};
window.play = state;            // read by tests and the latency script

function log(text) {
  const el = $("log");
  el.textContent = (text + "\n" + el.textContent).slice(0, 4000);
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

function sendKey(key, type = "action") {
  const id = state.nextId++;
  state.sent.set(id, performance.now());
  if (state.sent.size > 500) state.sent.delete(state.sent.keys().next().value);
  send({ type, key, id });
}

// -- keyboard and on-screen buttons ------------------------------------------------------
function isMotion(key) { return key in state.moves || key === " "; }

function press(key) {
  if (isMotion(key)) {
    state.lastKey = key;
    if (!state.held.includes(key)) state.held.push(key);
    markHeld();
    if (state.done) { $("status").textContent = "episode ended: reset (n) for a new one"; return; }
    if (!state.paused) sendKey(key);
    if (state.timer === null) {
      state.timer = setInterval(() => {
        if (state.held.length && !state.paused && !state.done) {
          sendKey(state.held[state.held.length - 1]);
        }
      }, REPEAT_MS);
    }
  } else if (key === "g") sendKey("g");
  else if (key === "n") reset();
  else if (key === "p") togglePause();
  else if (key === ".") stepOnce();
}

function release(key) {
  state.held = state.held.filter((k) => k !== key);
  markHeld();
  if (!state.held.length && state.timer !== null) { clearInterval(state.timer); state.timer = null; }
}

function markHeld() {
  document.querySelectorAll("button[data-key]").forEach((b) => {
    b.classList.toggle("held", state.held.includes(b.dataset.key));
  });
}

function typing(e) { return ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName); }

document.addEventListener("keydown", (e) => {
  if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (e.repeat) { if (isMotion(key)) e.preventDefault(); return; }  // our own repeat
  if (isMotion(key) || "gnp.".includes(key)) { e.preventDefault(); press(key); }
});
document.addEventListener("keyup", (e) => {
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  release(key);
});
window.addEventListener("blur", () => { [...state.held].forEach(release); });

document.querySelectorAll("button[data-key]").forEach((b) => {
  const key = b.dataset.key;
  b.addEventListener("mousedown", (e) => { e.preventDefault(); press(key); });
  b.addEventListener("mouseup", () => release(key));
  b.addEventListener("mouseleave", () => release(key));
});

// -- scene picker, reset, pause, step ----------------------------------------------------
function fillBankIndex() {
  const task = $("task").value;
  const select = $("bank-index");
  select.innerHTML = "";
  select.add(new Option("(random)", ""));
  (state.bank[task] || []).forEach((j) => select.add(new Option(String(j), String(j))));
}

function reset() {
  const task = $("task").value || null;
  const j = $("bank-index").value;
  send({ type: "reset", task, bank_index: j === "" ? null : Number(j) });
}

function togglePause() { send({ type: "pause", paused: !state.paused }); }
function stepOnce() { sendKey(state.lastKey, "step"); }

$("task").addEventListener("change", fillBankIndex);
$("reset").addEventListener("click", reset);
$("pause").addEventListener("click", togglePause);
$("step-once").addEventListener("click", stepOnce);

// -- sampler -----------------------------------------------------------------------------
const NUMBERS = ["num_steps", "lam", "cutoff", "tau_min", "tau_max"];
const SWITCHES = ["cfg", "truncation"];

function showSampler(s) {
  state.sampling = s;  // the server's active values
  NUMBERS.forEach((k) => { $(k).value = s[k]; });
  SWITCHES.forEach((k) => { $(k).checked = s[k]; });
}

$("sampler").addEventListener("submit", (e) => {
  e.preventDefault();
  const msg = { type: "sampling" };
  NUMBERS.forEach((k) => {
    const v = Number($(k).value);
    msg[k] = $(k).value === "" || !Number.isFinite(v) ? null : v;  // null: an error reply
  });
  SWITCHES.forEach((k) => { msg[k] = $(k).checked; });
  send(msg);
});

// -- drawing -----------------------------------------------------------------------------
function draw(canvasId, url) {
  const canvas = $(canvasId);
  const img = new Image();
  img.onload = () => {
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  };
  img.src = url;
}

function plot() {
  const canvas = $("plot");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 22;
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#ccc"; ctx.strokeRect(pad, 4, w - pad - 4, h - pad - 4);
  ctx.fillStyle = "#666"; ctx.font = "10px sans-serif";
  ctx.fillText("50", 2, 12); ctx.fillText("0", 2, h - pad);
  ctx.fillText("step", w / 2, h - 6);
  const n = Math.max(state.psnr.length, 2);
  const line = (values, top, color) => {
    ctx.strokeStyle = color; ctx.beginPath();
    values.forEach((v, i) => {
      const x = pad + (i / (n - 1)) * (w - pad - 4);
      const y = 4 + (1 - Math.min(Math.max(v / top, 0), 1)) * (h - pad - 8);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  };
  line(state.psnr, 50, "#1f77b4");
  line(state.ssim, 1, "#ff7f0e");
}

function fmt(v) {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
  if (Array.isArray(v)) return "[" + v.map(fmt).join(", ") + "]";
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => k + "=" + fmt(x)).join(" ");
  return String(v);
}

function showInfo(m) {
  const rows = [
    ["step", m.step], ["task / entry", m.scene.task + " / " + m.scene.bank_index],
    ["reward", m.reward], ["success", m.info.success], ["is_success", m.info.is_success],
    ["gripper", m.gripper],
  ];
  if (m.real_info) rows.push(["real reward", m.real_info.reward], ["real success", m.real_info.success]);
  if (m.psnr !== null) rows.push(["PSNR dB", m.psnr], ["SSIM", m.ssim]);
  for (const k of ["robot_state", "predicted_state", "uncertainty"]) {
    if (k in m.info) rows.push([k, m.info[k]]);
  }
  for (const k of ["action_norm", "tau", "guidance_weight"]) if (k in m.info) rows.push([k, m.info[k]]);
  rows.push(["step ms (env)", fmt(m.step_ms) + " (" + fmt(m.env_step_ms) + ")"]);
  rows.push(["sampler", m.sampling]);
  if (m.terminated || m.truncated) rows.push(["episode", m.terminated ? "ended: success" : "ended: time limit"]);
  $("info").innerHTML = "";
  rows.forEach(([k, v]) => {
    const tr = $("info").insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = fmt(v);
  });
}

// -- messages ----------------------------------------------------------------------------
function onFrame(m) {
  if (m.id !== null && state.sent.has(m.id)) {
    state.latencies.push(performance.now() - state.sent.get(m.id));
    state.sent.delete(m.id);
  }
  if (m.step === 0) { state.psnr = []; state.ssim = []; log("new episode: " + fmt(m.scene)); }
  if (m.psnr !== null) { state.psnr.push(m.psnr); state.ssim.push(m.ssim); }
  draw("imagined", m.imagined);
  if (m.real) draw("real", m.real);
  plot();
  showInfo(m);
  state.frames += 1;
  state.lastFrame = m;
  state.done = m.terminated || m.truncated;
  $("score-line").textContent = m.psnr === null ? "" :
    `step ${m.step}: PSNR ${m.psnr.toFixed(2)} dB, SSIM ${m.ssim.toFixed(3)}`;
  $("status").textContent = state.done
    ? `episode ended (${m.terminated ? "success" : "time limit"}): reset (n)`
    : (state.paused ? "paused" : `step ${m.step}`);
}

function onMessage(event) {
  const m = JSON.parse(event.data);
  if (m.type === "frame") onFrame(m);
  else if (m.type === "hello") {
    $("env-id").textContent = m.env_id;
    $("key-help").textContent = m.key_help.replace(", q quit", "") + "; p pause, . step once";
    state.moves = m.moves; state.bank = m.bank;
    const task = $("task");
    task.innerHTML = "";
    task.add(new Option("(any)", ""));
    Object.keys(m.bank).forEach((t) => task.add(new Option(t, t)));
    fillBankIndex();
    if (!m.real) {
      $("real").style.display = "none";
      $("real-reason").textContent = m.real_reason;
    }
    showSampler(m.sampling);
  } else if (m.type === "state") {
    state.paused = m.paused;
    $("pause").textContent = m.paused ? "resume (p)" : "pause (p)";
    $("status").textContent = m.paused ? "paused" : "running";
    showSampler(m.sampling);
    if (m.id !== undefined && m.id !== null) state.sent.delete(m.id);
  } else if (m.type === "dropped") {
    if (m.id !== null) state.sent.delete(m.id);
  } else if (m.type === "error") {
    state.errors.push(m.message);
    log("error: " + m.message);
    $("status").textContent = "error: " + m.message;
  }
}

function connect() {
  const ws = new WebSocket(`ws://${location.host}/ws`);
  ws.onmessage = onMessage;
  ws.onopen = () => { $("status").textContent = "connected"; };
  ws.onclose = () => { $("status").textContent = "disconnected (reload the page)"; };
  state.ws = ws;
}
connect();
