"""Every default of lib/config/schema.py against SRS 7.0.18's code (issue 23 point 2).

The tables below were written by reading SRS's getters in trunk/src/app/srs_app_config.cpp of
SRS 7.0.18 (ossrs/srs 101382afd, `static ... DEFAULT = ...` or the SRS_PERF_* / SRS_CONSTS_*
constant it returns, from trunk/src/core/srs_core_performance.hpp and
trunk/src/kernel/srs_kernel_consts.hpp), NOT from our schema. Each value is written as config
text in the directive's unit (SRS's `10 * SRS_UTIME_SECONDS` for a seconds directive is "10").
Where SRS's full.conf comments say something else, the code wins (what SRS runs with).

A directive of the schema must be in exactly one table: SRS (same default), DEVIATIONS (a
different default on purpose, with the reason) or NOT_IN_SRS_7_0_18 (srsedge's, or later SRS).
"""

from lib.config import schema

CPP = "srs_app_config.cpp"

# path -> (SRS 7.0.18's default as config text, where SRS says it)
SRS = {
    "listen": (["1935"], "srs_kernel_consts.hpp SRS_CONSTS_RTMP_DEFAULT_PORT"),
    "pid": ("./objs/srs.pid", f"{CPP}:3083"),
    "chunk_size": ("60000", "srs_kernel_consts.hpp:39 SRS_CONSTS_RTMP_SRS_CHUNK_SIZE"),
    "max_connections": ("1000", f"{CPP}:3049"),
    "srs_log_tank": ("file", f"{CPP}:6615 get_log_tank_file DEFAULT true"),
    "srs_log_level": ("trace", f"{CPP}:6634"),
    "srs_log_level_v2": (None, f"{CPP}:6649 (\"\")"),
    "srs_log_file": ("./objs/srs.log", f"{CPP}:6664"),
    "ff_log_dir": ("./objs", f"{CPP}:6684"),
    "ff_log_level": ("info", f"{CPP}:6698"),
    "utc_time": ("off", f"{CPP}:3112"),
    "work_dir": ("./", f"{CPP}:3126"),
    "asprocess": ("off", f"{CPP}:3140"),
    "server_id": (None, f"{CPP}:3011 (generated when empty)"),
    "pithy_print_ms": ("10000", f"{CPP}:3098 (10 s)"),
    "grace_start_wait": ("2300", f"{CPP}:3196"),
    "grace_final_wait": ("3200", f"{CPP}:3210"),
    "force_grace_quit": ("off", f"{CPP}:3224"),
    "empty_ip_ok": ("on", f"{CPP}:3182"),
    "disable_daemon_for_docker": ("on", f"{CPP}:3238"),
    "inotify_auto_reload": ("off", f"{CPP}:3252"),
    "auto_reload_for_docker": ("on", f"{CPP}:3266"),
    "tcmalloc_release_rate": ("0.8", f"{CPP}:3286 SRS_PERF_TCMALLOC_RELEASE_RATE"),
    "query_latest_version": ("off", f"{CPP}:3154"),
    "first_wait_for_qlv": ("300", f"{CPP}:3168 (5 * 60 s)"),
    "is_full": ("off", "srs_app_config.cpp: only `is_full on` matters (utest)"),
    "in_docker": ("off", f"{CPP}:2936"),
    "http_api.enabled": ("off", f"{CPP}:7665"),
    "http_api.listen": ("1985", f"{CPP}:7683 (srsedge binds a bare port to 127.0.0.1)"),
    "http_api.crossdomain": ("on", f"{CPP}:7703"),
    "http_api.https.enabled": ("off", f"{CPP}:7860"),
    "http_api.https.listen": ("1990", f"{CPP}:7884 (srsedge binds a bare port to 127.0.0.1)"),
    "http_api.https.key": ("./conf/server.key", f"{CPP}:7907"),
    "http_api.https.cert": ("./conf/server.crt", f"{CPP}:7926"),
    "http_server.https.enabled": ("off", f"{CPP}:8386"),
    "http_server.https.listen": ("8088", f"{CPP}:8409"),
    "http_server.https.key": ("./conf/server.key", f"{CPP}:8428"),
    "http_server.https.cert": ("./conf/server.crt", f"{CPP}:8447"),
    "http_api.raw_api.enabled": ("off", f"{CPP}:7722"),
    "http_api.raw_api.allow_reload": ("off", f"{CPP}:7746"),
    "http_api.raw_api.allow_query": ("off", f"{CPP}:7768 (always false)"),
    "http_api.raw_api.allow_update": ("off", f"{CPP}:7774 (always false)"),
    "http_api.auth.enabled": ("off", f"{CPP}:7782"),
    "http_api.auth.username": ("", f"{CPP}:7806"),
    "http_api.auth.password": ("", f"{CPP}:7830"),
    "http_server.enabled": ("off", f"{CPP}:8305"),
    "http_server.listen": ("8080", f"{CPP}:8323"),
    "http_server.dir": ("./objs/nginx/html", f"{CPP}:8342"),
    "http_server.crossdomain": ("on", f"{CPP}:8361"),
    "vhost.enabled": ("on", f"{CPP}:4845 get_vhost_enabled (PREFER_TRUE)"),
    "vhost.min_latency": ("off", f"{CPP}:5387 SRS_PERF_MIN_LATENCY_ENABLED"),
    "vhost.tcp_nodelay": ("off", f"{CPP}:5413"),
    "vhost.chunk_size": (None, f"{CPP}:5178 (the global chunk_size)"),
    "vhost.in_ack_size": ("0", f"{CPP}:5139"),
    "vhost.out_ack_size": ("2500000", f"{CPP}:5158"),
    "vhost.play.gop_cache": ("on", f"{CPP}:4876 SRS_PERF_GOP_CACHE"),
    "vhost.play.gop_cache_max_frames": ("2500", f"{CPP}:4897"),
    "vhost.play.queue_length": ("30", f"{CPP}:5042 SRS_PERF_PLAY_QUEUE"),
    "vhost.play.time_jitter": ("full", f"{CPP}:4994"),
    "vhost.play.atc": ("off", f"{CPP}:4944"),
    "vhost.play.mix_correct": ("off", f"{CPP}:5018"),
    "vhost.play.atc_auto": ("off", f"{CPP}:4968"),
    "vhost.play.mw_latency": ("350", f"{CPP}:5306 SRS_PERF_MW_SLEEP"),
    "vhost.play.mw_msgs": ("8", f"{CPP}:5347 SRS_PERF_MW_MIN_MSGS (0 with min_latency)"),
    "vhost.play.send_min_interval": ("0", f"{CPP}:5432"),
    "vhost.play.reduce_sequence_header": ("off", f"{CPP}:5456"),
    "vhost.publish.mr": ("off", f"{CPP}:5254 SRS_PERF_MR_ENABLED"),
    "vhost.publish.mr_latency": ("350", f"{CPP}:5274 SRS_PERF_MR_SLEEP"),
    "vhost.publish.firstpkt_timeout": ("20000", f"{CPP}:5481 (20 s)"),
    "vhost.publish.normal_timeout": ("5000", f"{CPP}:5508 (5 s)"),
    "vhost.publish.parse_sps": ("on", f"{CPP}:5202"),
    "vhost.publish.try_annexb_first": ("on", f"{CPP}:5227"),
    "vhost.publish.kickoff_for_idle": ("0", f"{CPP}:5537"),
    "vhost.http_hooks.enabled": ("off", f"{CPP}:5641"),
    **{f"vhost.http_hooks.{hook}": ([], f"{CPP}:5670-5776 (no URL)") for hook in (
        "on_connect", "on_close", "on_publish", "on_unpublish", "on_play", "on_stop", "on_dvr",
        "on_hls", "on_hls_notify")},
    "vhost.cluster.mode": ("local", f"{CPP}:5778 get_vhost_is_edge (remote only if said)"),
    "vhost.cluster.origin": ([], f"{CPP}:5806 (none)"),
    "vhost.cluster.token_traverse": ("off", f"{CPP}:5867"),
    "vhost.cluster.debug_srs_upnode": ("on", f"{CPP}:4920"),
    "vhost.cluster.coworkers": ([], f"{CPP}:5937 (none)"),
    "vhost.cluster.origin_cluster": ("off", f"{CPP}:5909"),
    "vhost.cluster.protocol": ("rtmp", f"{CPP}:5823"),
    "vhost.cluster.follow_client": ("off", f"{CPP}:5845"),
    "vhost.forward.enabled": ("off", f"{CPP}:5570"),
    "vhost.forward.destination": ([], f"{CPP}:5597 get_forwards (none)"),
    "vhost.forward.backend": (None, f"{CPP}:5612 (none)"),
    "vhost.hls.enabled": ("off", f"{CPP}:6909"),
    "vhost.hls.hls_fragment": ("10", f"{CPP}:7038"),
    "vhost.hls.hls_td_ratio": ("1.0", f"{CPP}:7057"),
    "vhost.hls.hls_aof_ratio": ("2.1", f"{CPP}:7076"),
    "vhost.hls.hls_window": ("60", f"{CPP}:7095"),
    "vhost.hls.hls_on_error": ("continue", f"{CPP}:7115"),
    "vhost.hls.hls_path": ("./objs/nginx/html", f"{CPP}:6962"),
    "vhost.hls.hls_m3u8_file": ("[app]/[stream].m3u8", f"{CPP}:6981"),
    "vhost.hls.hls_ts_file": ("[app]/[stream]-[seq].ts", f"{CPP}:7000"),
    "vhost.hls.hls_ts_floor": ("off", f"{CPP}:7019"),
    "vhost.hls.hls_entry_prefix": ("", f"{CPP}:6943"),
    "vhost.hls.hls_acodec": ("aac", f"{CPP}:7134"),
    "vhost.hls.hls_vcodec": ("h264", f"{CPP}:7153"),
    "vhost.hls.hls_cleanup": ("on", f"{CPP}:7248"),
    "vhost.hls.hls_dispose": ("120", f"{CPP}:7267"),
    "vhost.hls.hls_nb_notify": ("64", f"{CPP}:7172"),
    "vhost.hls.hls_wait_keyframe": ("on", f"{CPP}:7286"),
    "vhost.hls.hls_keys": ("off", f"{CPP}:7305"),
    "vhost.hls.hls_fragments_per_key": ("5", f"{CPP}:7324"),
    "vhost.hls.hls_key_file": ("[app]/[stream]-[seq].key", f"{CPP}:7343"),
    "vhost.hls.hls_key_file_path": (None, f"{CPP}:7363 (hls_path; the view fills it)"),
    "vhost.hls.hls_key_url": (None, f"{CPP}:7383 (hls_path; the view fills it)"),
    "vhost.hls.hls_dts_directly": ("on", f"{CPP}:7191"),
    "vhost.hls.hls_storage": (None, f"{CPP}:2691 (removed in SRS 3, warned)"),
    "vhost.hls.hls_mount": (None, f"{CPP}:2691 (removed in SRS 3, warned)"),
    "vhost.http_remux.enabled": ("off", f"{CPP}:8538"),
    "vhost.http_remux.fast_cache": ("0", f"{CPP}:8571"),
    "vhost.http_remux.has_audio": ("on", f"{CPP}:8619"),
    "vhost.http_remux.has_video": ("on", f"{CPP}:8643"),
    "vhost.http_remux.guess_has_av": ("on", f"{CPP}:8667"),
    "vhost.http_remux.mount": ("[vhost]/[app]/[stream].flv", f"{CPP}:8691"),
    "vhost.http_static.enabled": ("off", f"{CPP}:8466"),
    "vhost.http_static.mount": ("[vhost]/", f"{CPP}:8490"),
    "vhost.http_static.dir": ("./objs/nginx/html", f"{CPP}:8514"),
    "vhost.security.enabled": ("off", f"{CPP}:5964"),
    "vhost.security.allow": (None, "srs_app_security.cpp (no rule)"),
    "vhost.security.deny": (None, "srs_app_security.cpp (no rule)"),
    "vhost.refer.enabled": ("off", f"{CPP}:5064"),
    "vhost.refer.all": (None, f"{CPP}:5084 (none)"),
    "vhost.refer.publish": (None, f"{CPP}:5118 (none)"),
    "vhost.refer.play": (None, f"{CPP}:5101 (none)"),
    "vhost.dvr.enabled": ("off", f"{CPP}:7513"),
    "vhost.dvr.dvr_apply": (["all"], f"{CPP}:328 srs_config_apply_filter (none = all)"),
    "vhost.dvr.dvr_path": ("./objs/nginx/html/[app]/[stream].[timestamp].flv", f"{CPP}:7561"),
    "vhost.dvr.dvr_plan": ("session", f"{CPP}:7580"),
    "vhost.dvr.dvr_duration": ("30", f"{CPP}:7599"),
    "vhost.dvr.dvr_wait_keyframe": ("on", f"{CPP}:7618"),
    "vhost.dvr.time_jitter": ("full", f"{CPP}:7639"),
    "vhost.exec.enabled": ("off", f"{CPP}:6456"),
    "vhost.exec.publish": ([], f"{CPP}:6483 (none)"),
    "vhost.transcode.enabled": ("off", f"{CPP}:6018"),
    "vhost.ingest.enabled": ("off", f"{CPP}:6534"),
    "vhost.ingest.input.type": ("file", f"{CPP}:6566"),
    "vhost.ingest.input.url": ("", f"{CPP}:6587"),
    **{f"vhost.{where}.engine.{name}": (value, f"{CPP}:{line}") for where in ("transcode", "ingest")
       for name, value, line in (
           ("enabled", "off", 6069), ("iformat", "flv", 6122), ("vcodec", "", 6166),
           ("vbitrate", "0", 6182), ("vfps", "0", 6198), ("vwidth", "0", 6214),
           ("vheight", "0", 6230), ("vthreads", "1", 6246), ("vprofile", "", 6262),
           ("vpreset", "", 6278), ("acodec", "", 6322), ("abitrate", "0", 6338),
           ("asample_rate", "0", 6354), ("achannels", "0", 6370), ("oformat", "flv", 6414),
           ("output", "", 6430))},
}

# path -> (SRS 7.0.18's default, where SRS says it, why srsedge differs)
DEVIATIONS = {
    "daemon": ("on", f"{CPP}:2920 (PREFER_TRUE)", "foreground under a supervisor or a test"),
    "vhost.hls.hls_ctx": ("on", f"{CPP}:7210", "per-viewer URLs defeat the nginx cache tier"),
    "vhost.hls.hls_ts_ctx": ("on", f"{CPP}:7229", "as hls_ctx"),
    "vhost.http_remux.drop_if_not_match": ("on", f"{CPP}:8595",
                                           "srsedge never drops (off); `on` is reported"),
    "vhost.cluster.vhost": ("[vhost]", f"{CPP}:5889", "None means the same vhost ([vhost])"),
    "vhost.transcode.ffmpeg": ("", f"{CPP}:6034", "ffmpeg on PATH"),
    "vhost.ingest.ffmpeg": ("", f"{CPP}:6550", "ffmpeg on PATH"),
}

# srsedge extensions, and HLS directives of SRS releases after 7.0.18 (not in its whitelist,
# srs_app_config.cpp:2680-2684, nor its getters)
NOT_IN_SRS_7_0_18 = {
    "workers", "http_api.allow_origin", "http_api.jsonp", "vhost.http_hooks.timeout",
    "vhost.cluster.edge_idle_timeout", "vhost.cluster.origin_data_timeout",
    "vhost.cluster.directory", "vhost.cluster.directory_ttl", "max_processes",
    "vhost.max_processes", "vhost.play.publisher_wait",
    "vhost.hls.hls_use_fmp4", "vhost.hls.hls_fmp4_file", "vhost.hls.hls_init_file",
    "vhost.hls.hls_recover",
}


def schema_values(block=schema.ROOT, path=""):
    for name, spec in block.children.items():
        dotted = f"{path}.{name}" if path else name
        if isinstance(spec, schema.Block):
            if spec.children is not None:
                yield from schema_values(spec, dotted)
        else:
            yield dotted, spec


def typed(spec, text):
    if text is None or text == []:
        return None if spec.arity == 1 and not spec.repeat else []
    return spec.convert(text if isinstance(text, list) else [text])


def test_every_schema_default_is_srs_7_or_a_named_deviation():
    wrong, unlisted = [], []
    for path, spec in schema_values():
        tables = [path in SRS, path in DEVIATIONS, path in NOT_IN_SRS_7_0_18]
        if sum(tables) != 1:
            unlisted.append(path)
            continue
        ours = spec.default_value()
        if path in SRS and typed(spec, SRS[path][0]) != (ours if ours is not None or spec.arity == 1
                                                         and not spec.repeat else []):
            wrong.append(f"{path}: ours {ours!r}, SRS 7.0.18 {SRS[path][0]!r} ({SRS[path][1]})")
        if path in DEVIATIONS and typed(spec, DEVIATIONS[path][0]) == ours:
            wrong.append(f"{path}: listed as a deviation but equals SRS's {DEVIATIONS[path][0]!r}")
    assert not unlisted, f"directives in no table (or several): {unlisted}"
    assert not wrong, "\n".join(wrong)


def test_tables_name_only_schema_directives():
    known = {path for path, _ in schema_values()}
    assert not (set(SRS) | set(DEVIATIONS) | NOT_IN_SRS_7_0_18) - known


def test_srs_hls_conf_target_duration_is_the_fragment(tmp_path):
    """SRS's hls.conf (hls_fragment 10, defaults otherwise), 2 s GOPs: SRS 7.0.18 writes
    #EXT-X-TARGETDURATION:10 (ceil(max(longest segment, hls_td_ratio 1.0 * 10))); with the old
    td ratio 1.5 srsedge wrote 15, which raised hls.js's live latency."""
    from tests.test_hls import new_synth, synth
    seg, disk = new_synth(tmp_path, hls_fragment=10.0, hls_window=60.0)
    synth(seg, disk, 0, 32000, key_every=2000)
    assert "#EXT-X-TARGETDURATION:10\n" in seg.playlist().decode()
