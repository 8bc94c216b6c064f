// The player page. Rules:
// - What to play: ?url=URL (type from ?type= or the extension), else ?stream=APP/STREAM with
//   ?type=flv|hls, turned into this server's URL with the default vhost's templates from
//   config.js (window.SRSEDGE). Plays at once: the video is muted so autoplay is allowed.
// - HTTP-FLV: mpegts.js (MediaSource). HLS: hls.js where MediaSource exists, else the browser's
//   own HLS (Safari/iOS). Only the engine a page needs is loaded (js/mpegts.js or js/hls.js). Codecs are not filtered here: HEVC/AV1 play where the browser decodes
//   them, and an undecodable stream shows the browser's error.
// - A stream that is not there yet (404, network error) is retried every RETRY_MS.
// - Stats refresh every second: codec, resolution, bitrate, buffer, latency, frames.
"use strict";
(function () {
  const RETRY_MS = 3000;
  const conf = window.SRSEDGE || { vhosts: {}, default_vhost: "__defaultVhost__" };
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const params = new URLSearchParams(location.search);
  const state = { engine: null, videoCodec: null, audioCodec: null, kbps: null, bytes: [],
                  retryTimer: null, latency: null, kind: null, url: null };
  window.srsedgePlayer = state;            // for the curious (and the tests)

  function message(text, info) {
    const box = $("message");
    box.textContent = text || "";
    box.classList.toggle("hidden", !text);
    box.classList.toggle("info", !!info);
  }

  function codecName(codec) {
    if (!codec) return "-";
    const c = String(codec);
    const names = [["avc", "H.264"], ["hvc", "HEVC"], ["hev", "HEVC"], ["av01", "AV1"],
                   ["vp09", "VP9"], ["mp4a.40.2", "AAC-LC"], ["mp4a.40.5", "HE-AAC"],
                   ["mp4a", "AAC"], ["opus", "Opus"], ["mp3", "MP3"], ["ac-3", "AC-3"]];
    for (const [prefix, name] of names) {
      if (c.toLowerCase().startsWith(prefix)) return `${name} (${c})`;
    }
    return c;
  }

  // ------------------------------------------------------------ what to play
  function target() {
    const url = params.get("url");
    const type = (params.get("type") || "").toLowerCase();
    if (url) {
      const kind = type || (/\.m3u8(\?|$)/i.test(url) ? "hls" : "flv");
      return { url, kind };
    }
    const stream = (params.get("stream") || "").replace(/^\/+|\/+$/g, "");
    if (!stream) return null;
    if (/^[a-z]+:\/\//i.test(stream)) {
      return { url: stream, kind: type || (/\.m3u8(\?|$)/i.test(stream) ? "hls" : "flv") };
    }
    const kind = type === "hls" ? "hls" : "flv";
    const slash = stream.lastIndexOf("/");
    const app = slash > 0 ? stream.slice(0, slash) : "live";
    const name = slash > 0 ? stream.slice(slash + 1) : stream;
    const vhost = conf.vhosts[conf.default_vhost] || {};
    const template = vhost[kind];
    if (!template) {
      const why = kind === "hls" && vhost.edge
        ? "this server is an edge: it makes no HLS (the origin does; the nginx cache tier serves it)"
        : `this server does not serve ${kind.toUpperCase()} for the default vhost`;
      return { error: `Cannot play ${stream} as ${kind.toUpperCase()}: ${why}.` };
    }
    const path = template.replace("[app]", app).replace("[stream]", name);
    return { url: `${location.protocol}//${location.host}${path}`, kind };
  }

  // ------------------------------------------------------------ engines
  function retry(why) {
    message(`${why} - retrying in ${RETRY_MS / 1000} s`, true);
    state.waiting = true;
    stop();
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(start, RETRY_MS);
  }

  function stop() {
    if (state.player) {
      try { state.player.destroy(); } catch (e) { /* already gone */ }
      state.player = null;
    }
  }

  function playVideo() {
    const p = video.play();
    if (p && p.catch) p.catch(() => { /* autoplay refused: the controls are there */ });
  }

  function noteBytes(bytes, seconds) {
    // bitrate = media bytes over media seconds, smoothed over the last few pieces
    state.bytes.push([bytes, seconds]);
    if (state.bytes.length > 8) state.bytes.shift();
    const b = state.bytes.reduce((a, x) => a + x[0], 0);
    const s = state.bytes.reduce((a, x) => a + x[1], 0);
    if (s > 0) state.kbps = (b * 8) / s / 1000;
  }

  function loadScript(src) {
    return new Promise((resolve) => {
      const tag = document.createElement("script");
      tag.src = src;
      tag.onload = resolve;
      tag.onerror = resolve;            // the caller sees the missing global and says so
      document.head.appendChild(tag);
    });
  }

  function startFlv(url) {
    if (!window.mpegts) {
      message("mpegts.js is not installed on this server: run `make www` (npm ci in www/).");
      return;
    }
    if (!mpegts.getFeatureList().mseLivePlayback) {
      message("This browser has no MediaSource live playback: HTTP-FLV cannot play here; try HLS.");
      return;
    }
    state.engine = `mpegts.js ${mpegts.version || ""}`.trim();
    const player = mpegts.createPlayer({ type: "flv", isLive: true, url },
      { enableWorker: false, enableStashBuffer: false, lazyLoad: false,
        liveBufferLatencyChasing: true, liveBufferLatencyMaxLatency: 3.0,
        liveBufferLatencyMinRemain: 0.5 });
    state.player = player;
    player.on(mpegts.Events.MEDIA_INFO, (info) => {
      state.videoCodec = info.videoCodec || (info.hasVideo === false ? "none" : null);
      state.audioCodec = info.audioCodec || (info.hasAudio === false ? "none" : null);
    });
    player.on(mpegts.Events.STATISTICS_INFO, (s) => {
      // the loader's speed (KiB/s); for a live stream read as it comes, the stream's rate
      if (typeof s.speed === "number") state.kbps = s.speed * 8 * 1.024;
    });
    player.on(mpegts.Events.ERROR, (type, detail, info) => retry(info && info.code === 404
      ? "The stream is not published here yet (HTTP 404)" : `HTTP-FLV: ${type} ${detail}`));
    player.on(mpegts.Events.LOADING_COMPLETE, () => retry("the stream ended"));
    player.attachMediaElement(video);
    player.load();
    playVideo();
  }

  function startHls(url) {
    const Hls = window.Hls;
    if (Hls && Hls.isSupported()) {
      state.engine = `hls.js ${Hls.version || ""}`.trim();
      const hls = new Hls({ liveSyncDurationCount: 2, manifestLoadingMaxRetry: 2 });
      state.player = hls;
      hls.on(Hls.Events.FRAG_PARSING_INIT_SEGMENT, (_e, data) => {
        const t = data.tracks || {};
        if (t.video) state.videoCodec = t.video.codec;
        if (t.audio) state.audioCodec = t.audio.codec;
        if (t.audiovideo) state.videoCodec = t.audiovideo.codec;
      });
      hls.on(Hls.Events.FRAG_LOADED, (_e, data) => {
        noteBytes(data.frag.stats.loaded || 0, data.frag.duration || 0);
      });
      hls.on(Hls.Events.ERROR, (_e, data) => {
        if (!data.fatal) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
        } else if (data.response && data.response.code === 404) {
          retry("The stream has no HLS playlist here yet (HTTP 404)");
        } else {
          retry(`HLS: ${data.details}`);
        }
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      hls.on(Hls.Events.MANIFEST_PARSED, playVideo);
      return;
    }
    if (video.canPlayType("application/vnd.apple.mpegurl")) {
      state.engine = "native HLS";
      video.src = url;
      const why = Hls ? "" : " (hls.js is not installed on this server: make www)";
      video.addEventListener("error", () => retry(`HLS: the browser could not play it${why}`),
                             { once: true });
      playVideo();
      return;
    }
    message(Hls ? "This browser plays no HLS (no MediaSource, no native HLS)."
      : "hls.js is not installed on this server: run `make www` (npm ci in www/).");
  }

  function start() {
    message("");
    state.waiting = false;
    const t = target();
    if (!t) {
      message("Type a stream (app/stream, e.g. live/livestream) or an HTTP-FLV/HLS URL above " +
              "and press Play.", true);
      $("target").value = "live/livestream";
      return;
    }
    if (t.error) {
      message(t.error);
      return;
    }
    if (/^rtmp/i.test(t.url)) {
      message("A browser cannot play RTMP: use HTTP-FLV or HLS.");
      return;
    }
    state.kind = t.kind;
    state.url = t.url;
    $("url").textContent = t.url;
    document.title = `${t.kind.toUpperCase()} ${t.url} - srsedge player`;
    if (t.kind === "hls") {
      if (window.Hls) startHls(t.url);
      else loadScript("js/hls.js").then(() => startHls(t.url));
    } else if (window.mpegts) {
      startFlv(t.url);
    } else {
      loadScript("js/mpegts.js").then(() => startFlv(t.url));
    }
  }

  // ------------------------------------------------------------ stats
  function bufferAhead() {
    const b = video.buffered;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= video.currentTime + 0.1 && video.currentTime <= b.end(i)) {
        return b.end(i) - video.currentTime;
      }
    }
    return 0;
  }

  function showStats() {
    const playing = !video.paused && video.readyState >= 3;
    const label = video.error ? ["bad", "error"] : playing ? ["good", "playing"]
      : state.waiting ? ["warn", "waiting for the stream"]
      : video.readyState < 3 && state.player ? ["warn", "buffering"] : ["", "stopped"];
    $("s-state").innerHTML = `<span class="dot ${label[0]}"></span>${label[1]}`;
    $("s-engine").textContent = state.engine || "-";
    $("s-video").textContent = codecName(state.videoCodec);
    $("s-audio").textContent = codecName(state.audioCodec);
    $("s-res").textContent = video.videoWidth ? `${video.videoWidth} x ${video.videoHeight}` : "-";
    $("s-bitrate").textContent = state.kbps ? `${Math.round(state.kbps)} kbps` : "-";
    const ahead = bufferAhead();
    $("s-buffer").textContent = `${ahead.toFixed(2)} s`;
    let latency = ahead;                  // HTTP-FLV: how far behind the newest received frame
    if (state.player && state.kind === "hls" && typeof state.player.latency === "number") {
      latency = state.player.latency;     // hls.js: behind the playlist's live edge
    }
    $("s-latency").textContent = Number.isFinite(latency) ? `${latency.toFixed(2)} s` : "-";
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    $("s-frames").textContent = q ? `${q.totalVideoFrames} decoded, ${q.droppedVideoFrames} dropped` : "-";
    $("s-played").textContent = `${video.currentTime.toFixed(1)} s`;
  }

  // ------------------------------------------------------------ wiring
  const given = params.get("url") || params.get("stream") || "";
  $("target").value = given;
  $("type").value = (params.get("type") || (/\.m3u8/i.test(given) ? "hls" : "flv")).toLowerCase();
  $("unmute").addEventListener("click", () => {
    video.muted = !video.muted;
    $("unmute").textContent = video.muted ? "Unmute" : "Mute";
    playVideo();
  });
  start();
  setInterval(showStats, 1000);
})();
