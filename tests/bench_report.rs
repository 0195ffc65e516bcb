//! Unit tests of the controller benchmark's pure pieces (benches/controller: percentiles, API
//! request counting, the Markdown table, the charts, the trace's metric picking). A
//! `harness = false` bench runs no `#[test]`, so they are compiled and run here.
#![allow(dead_code)]

#[path = "../benches/controller/apimetrics.rs"]
mod apimetrics;
#[path = "../benches/controller/audit.rs"]
mod audit;
#[path = "../benches/controller/charts.rs"]
mod charts;
#[path = "../benches/controller/procfs.rs"]
mod procfs;
#[path = "../benches/controller/report.rs"]
mod report;
#[path = "../benches/controller/stats.rs"]
mod stats;
#[path = "../benches/controller/trace.rs"]
mod trace;

mod apimetrics_tests {
    use super::apimetrics::*;

    const PAGE: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 12
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="sourcebuild.dev",resource="sourcebuilds",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 24
apiserver_request_total{code="201",component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 36
apiserver_request_total{code="201",component="apiserver",dry_run="",group="sourcebuild.dev",resource="sourcebuilds",scope="resource",subresource="",verb="POST",version="v1alpha1"} 12
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 24
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 3
apiserver_request_duration_seconds_bucket{le="0.1",verb="GET"} 4
"#;

    #[test]
    fn parses_and_sums_over_codes() {
        let counts = parse(PAGE).unwrap();
        let pods_post = RequestKey {
            group: String::new(),
            resource: "pods".into(),
            subresource: String::new(),
            verb: "POST".into(),
        };
        assert_eq!(counts[&pods_post], 13);
        assert_eq!(counts.len(), 6);
    }

    #[test]
    fn operator_writes_leave_out_the_benchmarks_own() {
        let delta = parse(PAGE).unwrap();
        let w = operator_writes(&delta);
        assert_eq!(w.objects, 13 + 24);
        assert_eq!(w.events, 36);
        assert_eq!(w.total, 13 + 24 + 36);
        assert_eq!(w.by_kind["sourcebuild.dev sourcebuilds/status APPLY"], 24);
        assert!(!w.by_kind.keys().any(|k| k.contains("pods/status")));
    }

    #[test]
    fn diff_keeps_what_grew() {
        let before = parse(PAGE).unwrap();
        let after = parse(&PAGE.replace("} 12\n", "} 15\n")).unwrap();
        let d = diff(&before, &after);
        assert_eq!(d.values().sum::<u64>(), 6, "{d:?}");
        assert!(diff(&before, &before).is_empty());
    }

    #[test]
    fn unlabelled_sample() {
        let text = "# TYPE x counter\nsourcebuild_reconciliations_total 12\nsourcebuild_reconciliations_total_extra 3\nsourcebuild_reconciles_in_flight 0\n";
        assert_eq!(
            sample(text, "sourcebuild_reconciliations_total"),
            Some(12.0)
        );
        assert_eq!(sample(text, "sourcebuild_reconciles_in_flight"), Some(0.0));
        assert_eq!(sample(text, "missing"), None);
    }

    #[test]
    fn watches_closed_by_resource() {
        let text = "# TYPE apiserver_terminated_watchers_total counter\n\
            apiserver_terminated_watchers_total{group=\"\",resource=\"pods\"} 43\n\
            apiserver_terminated_watchers_total{group=\"sourcebuild.dev\",resource=\"sourcebuilds\"} 3\n\
            apiserver_request_total{resource=\"pods\",verb=\"GET\"} 9\n";
        let closed = terminated_watchers(text).unwrap();
        assert_eq!(
            closed.into_iter().collect::<Vec<_>>(),
            [("pods".to_string(), 43), ("sourcebuilds".to_string(), 3)]
        );
        assert!(
            terminated_watchers("apiserver_terminated_watchers_total{resource=\"pods\"} x")
                .is_err()
        );
    }

    #[test]
    fn escaped_label_values_and_bad_lines() {
        let labels = parse_labels(r#"a="x\"y",b="\\",c="""#).unwrap();
        assert_eq!(labels["a"], "x\"y");
        assert_eq!(labels["b"], "\\");
        assert_eq!(labels["c"], "");
        assert!(parse("apiserver_request_total{verb=\"GET\" 3").is_err());
        assert!(parse("apiserver_request_total{verb=\"GET\"} x").is_err());
        assert!(parse("something_else 1").is_err());
    }
}

mod histogram_tests {
    use super::apimetrics::{buckets, quantile_bound};

    fn page(counts: [u64; 4]) -> String {
        let [a, b, c, inf] = counts;
        format!(
            "# TYPE sourcebuild_pod_watch_delay_seconds histogram\n\
             sourcebuild_pod_watch_delay_seconds_sum 1.5\n\
             sourcebuild_pod_watch_delay_seconds_count {inf}\n\
             sourcebuild_pod_watch_delay_seconds_bucket{{le=\"0.001\"}} {a}\n\
             sourcebuild_pod_watch_delay_seconds_bucket{{le=\"0.002\"}} {b}\n\
             sourcebuild_pod_watch_delay_seconds_bucket{{le=\"0.004\"}} {c}\n\
             sourcebuild_pod_watch_delay_seconds_bucket{{le=\"+Inf\"}} {inf}\n\
             sourcebuild_other_bucket{{le=\"0.001\"}} 99\n"
        )
    }

    #[test]
    fn reads_the_cumulative_buckets_of_one_histogram() {
        let read = buckets(&page([1, 2, 3, 4]), "sourcebuild_pod_watch_delay_seconds");
        assert_eq!(
            read,
            vec![(0.001, 1), (0.002, 2), (0.004, 3), (f64::INFINITY, 4)]
        );
        assert!(buckets("", "sourcebuild_pod_watch_delay_seconds").is_empty());
    }

    #[test]
    fn quantiles_count_only_what_was_observed_between_the_scrapes() {
        let name = "sourcebuild_pod_watch_delay_seconds";
        // Before: 10 fast observations. Between: 100 more, 50 of them over 2 ms and one past
        // the last bound.
        let before = buckets(&page([10, 10, 10, 10]), name);
        let after = buckets(&page([10, 60, 109, 110]), name);
        assert_eq!(quantile_bound(&before, &after, 0.5), Some(0.002));
        assert_eq!(quantile_bound(&before, &after, 0.99), Some(0.004));
        assert_eq!(quantile_bound(&before, &after, 1.0), Some(f64::INFINITY));
        // Nothing new: no quantile.
        assert_eq!(quantile_bound(&after, &after, 0.5), None);
        // A histogram that did not exist before counts from zero.
        assert_eq!(quantile_bound(&[], &after, 0.05), Some(0.001));
    }
}

mod audit_tests {
    use super::audit::creates;

    fn line(resource: &str, name: &str, code: u16, at: &str) -> String {
        format!(
            r#"{{"stage":"ResponseComplete","verb":"create","objectRef":{{"resource":"{resource}","namespace":"ns","name":"{name}"}},"responseStatus":{{"code":{code}}},"stageTimestamp":"{at}"}}"#
        )
    }

    #[test]
    fn times_create_to_pod_and_the_watches_from_the_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let lines = [
            line("sourcebuilds", "a", 201, "2026-12-05T10:00:00.000000Z"),
            line("pods", "a-build-1", 201, "2026-12-05T10:00:00.250000Z"),
            // Refused: not a create.
            line("pods", "b-build-1", 409, "2026-12-05T10:00:01.000000Z"),
            line("sourcebuilds", "b", 201, "2026-12-05T10:00:00.500000Z"),
            // A second build's Pod is not the first build's.
            line("pods", "a-build-2", 201, "2026-12-05T10:00:09.000000Z"),
            "not json".to_string(),
        ];
        std::fs::write(&log, lines.join("\n")).unwrap();
        let found = creates(&log, "ns").unwrap();
        assert_eq!(found.create_to_pod_ms(), vec![250.0]);
        assert!(
            creates(&log, "other")
                .unwrap()
                .create_to_pod_ms()
                .is_empty()
        );

        // Seen by the watches 20 ms and 1 s after the creates were answered.
        let start = 1_796_464_800_000.0; // 2026-12-05T10:00:00Z in ms
        let (a, b) = ("a".to_string(), "b".to_string());
        let (builds, pods) = found.watch_lag_ms(
            [
                (&a, Some(start + 20.0), Some(start + 1250.0)),
                (&b, Some(start + 520.0), None),
            ]
            .into_iter(),
        );
        let close = |got: &[f64], want: &[f64]| {
            let mut got = got.to_vec();
            got.sort_by(f64::total_cmp);
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 0.01)
        };
        assert!(close(&builds, &[20.0, 20.0]), "{builds:?}");
        assert!(close(&pods, &[1000.0]), "{pods:?}");
    }
}

mod charts_tests {
    use super::charts::*;

    #[test]
    fn cdf_is_an_svg_with_its_text() {
        let a: Vec<f64> = (1..=200).map(|i| f64::from(i) * 0.5).collect();
        let svg = latency_cdf(
            "create -> Pod",
            &[
                Series {
                    name: "steady",
                    samples: &a,
                },
                Series {
                    name: "burst",
                    samples: &[],
                },
            ],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("create -&gt; Pod") || svg.contains("create -> Pod"));
        assert!(svg.contains("steady (n = 200)"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn rss_chart_has_the_goal_line() {
        let svg = rss_over_time("RSS", &[(0.0, 10.0), (1.0, 20.0), (2.0, 18.0)], 50.0).unwrap();
        assert!(svg.contains("goal 50 MiB"));
        assert!(svg.contains("operator RSS (MiB)"));
    }
}

mod report_tests {
    use super::report::*;
    use super::stats::Summary;

    fn load(p99: f64) -> Load {
        Load {
            builds: 1200,
            rate_per_s: Some(20.0),
            create_to_pod_ms: Summary {
                count: 1200,
                p50: 8.25,
                p99,
                max: 300.0,
                ..Default::default()
            },
            create_to_pod_server_ms: Summary {
                count: 1200,
                p50: 7.5,
                p99: 40.0,
                max: 290.0,
                ..Default::default()
            },
            writes_per_build: 7.0,
            object_writes_per_build: 4.0,
            event_writes_per_build: 3.0,
            api_server_cpu_ms_per_build: 12.34,
            ..Default::default()
        }
    }

    #[test]
    fn table_has_a_row_per_measured_goal() {
        let report = Report {
            steady: Some(load(42.0)),
            ..Default::default()
        };
        let table = goals_table(&report);
        assert!(table.starts_with("| measure | goal | result |\n|---|---|---|\n"));
        assert!(
            table.contains("| SourceBuild -> build Pod, steady 20/s for 1200 builds | p50 <= 20 ms, p99 <= 100 ms | p50 8.2 ms, p99 42.0 ms (max 300 ms); as the API server timed it (audit log): p50 7.5 ms, p99 40.0 ms |"),
            "{table}"
        );
        assert!(
            table.contains("| 7.00 (4.00 Pod + status, 3.00 Events) |"),
            "{table}"
        );
        assert!(table.contains("| 12.3 ms |"), "{table}");
        assert_eq!(table.lines().count(), 2 + 4, "{table}");
        assert!(!table.contains("burst"));
    }

    #[test]
    fn how_soon_a_phase_shows_is_a_row_per_load_that_measured_it() {
        let mut unscheduled = load(42.0);
        unscheduled.builds = 200;
        unscheduled.create_to_phase_ms = super::stats::summarize(&[4.0, 6.0, 30.0]);
        let table = goals_table(&Report {
            steady: Some(load(42.0)),
            unscheduled: Some(unscheduled),
            ..Default::default()
        });
        assert!(
            table.contains("| SourceBuild -> a phase in status (no node, steady, 200 builds) | shown at once | p50 6.0 ms, p99 30.0 ms (max 30.0 ms) |"),
            "{table}"
        );
        assert!(!table.contains("a phase in status (steady"), "{table}");
    }

    #[test]
    fn cpu_by_process_is_a_row_of_its_own() {
        let mut steady = load(42.0);
        steady.cpu_ms_per_build = [("etcd".to_string(), 3.31), ("operator".to_string(), 0.5)]
            .into_iter()
            .collect();
        let table = goals_table(&Report {
            steady: Some(steady),
            ..Default::default()
        });
        assert!(
            table.contains("| the machine's CPU per build by process (steady) | (where the time goes) | etcd 3.3 ms, operator 0.5 ms |"),
            "{table}"
        );
        assert_eq!(table.lines().count(), 2 + 5, "{table}");
    }

    #[test]
    fn cores_in_the_create_to_pod_window_sum_against_the_machine() {
        let mut burst = load(42.0);
        burst.rate_per_s = None;
        burst.cores_to_last_pod = [
            ("kube-apiserver".to_string(), 1.524),
            ("operator".to_string(), 0.15),
        ]
        .into_iter()
        .collect();
        let table = goals_table(&Report {
            burst: Some(burst),
            machine: Machine {
                cpus: 2,
                ..Default::default()
            },
            ..Default::default()
        });
        assert!(
            table.contains("| cores in use from the first SourceBuild to the last Pod seen (burst) | (whether the machine was saturated) | 1.67 of 2: kube-apiserver 1.52, operator 0.15 |"),
            "{table}"
        );
    }

    #[test]
    fn the_floor_is_a_row_with_its_cores() {
        let floor = Pipeline {
            builds: 1000,
            seconds: 2.5,
            cores_to_last_pod: [("kube-apiserver".to_string(), 1.5)].into_iter().collect(),
            ..Default::default()
        };
        let table = goals_table(&Report {
            floor: Some(floor),
            machine: Machine {
                cpus: 2,
                ..Default::default()
            },
            ..Default::default()
        });
        assert_eq!(table.lines().count(), 2 + 1, "{table}");
        assert!(table.contains("(in the burst's place;"), "{table}");
        assert!(
            table.contains("1000 Pods in 2.5 s; the API server's CPU 0.0 ms per build; cores in use to the last Pod 1.50 of 2: kube-apiserver 1.50 |"),
            "{table}"
        );
    }

    #[test]
    fn empty_report_is_just_the_header() {
        assert_eq!(goals_table(&Report::default()).lines().count(), 2);
    }
}

mod procfs_tests {
    use super::procfs::*;

    #[test]
    fn cpu_ticks_count_from_the_last_parenthesis() {
        // A command name with a space and a ')' of its own; utime 1234, stime 56.
        let stat =
            "4242 (kube) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 12 0 99 1000 10";
        assert_eq!(stat_cpu_ticks(stat), Some(1290));
        assert_eq!(stat_cpu_ticks("4242 (short) S 1"), None);
        assert_eq!(stat_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn cores_between_widens_the_window_to_its_samples() {
        let sample = |at: f64, api: f64, op: Option<f64>| {
            let mut cpu = std::collections::BTreeMap::from([("kube-apiserver".to_string(), api)]);
            if let Some(op) = op {
                cpu.insert("operator".to_string(), op);
            }
            (at, cpu)
        };
        let samples = vec![
            sample(0.0, 10.0, Some(1.0)),
            sample(100.0, 10.15, Some(1.01)),
            sample(200.0, 10.3, Some(1.02)),
            sample(300.0, 10.45, None),
        ];
        // 150 -> 250 ms reads the samples at 100 and 300 ms: 0.3 s of CPU in 0.2 s.
        let cores = cores_between(&samples, 150.0, 250.0);
        assert!((cores["kube-apiserver"] - 1.5).abs() < 1e-9, "{cores:?}");
        // The operator is missing from the later sample: left out, not counted as zero.
        assert!(!cores.contains_key("operator"), "{cores:?}");
        let cores = cores_between(&samples, 0.0, 200.0);
        assert!((cores["operator"] - 0.1).abs() < 1e-9, "{cores:?}");
        // A window the samples do not reach on both sides gives nothing.
        assert!(cores_between(&samples, 150.0, 301.0).is_empty());
        assert!(cores_between(&samples[1..], 50.0, 200.0).is_empty());
        assert!(cores_between(&[], 0.0, 1.0).is_empty());
    }

    #[test]
    fn status_fields_in_mib() {
        let status =
            "Name:\toperator\nVmRSS:\t   51200 kB\nRssAnon:\t   35840 kB\nRssFile:\t   15360 kB\n";
        assert_eq!(status_field_mib(status, "VmRSS:"), Some(50.0));
        assert_eq!(status_field_mib(status, "RssFile:"), Some(15.0));
        assert_eq!(status_field_mib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_used_cpu_and_memory() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some_and(|s| s >= 0.0));
        assert!(rss_mib(me).is_some_and(|m| m > 0.0));
    }
}

mod stats_tests {
    use super::stats::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        // 10 samples: p99 is the largest, p50 the 5th.
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 99.0), Some(10.0));
        assert_eq!(percentile(&ten, 50.0), Some(5.0));
    }

    #[test]
    fn summary_of_unsorted_samples() {
        let s = summarize(&[30.0, 10.0, 20.0, 40.0]);
        assert_eq!(s.count, 4);
        assert_eq!(s.p50, 20.0);
        assert_eq!(s.p99, 40.0);
        assert_eq!(s.max, 40.0);
        assert_eq!(s.mean, 25.0);
        assert_eq!(summarize(&[]), Summary::default());
    }
}

mod trace_tests {
    use super::trace::*;

    #[test]
    fn picks_pod_and_unlabelled_watch_lines_only() {
        let text = "\
# HELP apiserver_watch_cache_events_received_total Counter of events received
apiserver_watch_cache_events_received_total{resource=\"pods\"} 1200
apiserver_watch_cache_events_received_total{resource=\"sourcebuilds.sourcebuild.dev\"} 900
apiserver_watch_events_total{group=\"\",kind=\"Pod\",version=\"v1\"} 3400
apiserver_watch_events_total{group=\"\",kind=\"Event\",version=\"v1\"} 10
etcd_debugging_mvcc_pending_events_total 612
etcd_server_has_leader 1
";
        assert_eq!(
            pick(text),
            vec![
                "apiserver_watch_cache_events_received_total{resource=\"pods\"} 1200",
                "apiserver_watch_events_total{group=\"\",kind=\"Pod\",version=\"v1\"} 3400",
                "etcd_debugging_mvcc_pending_events_total 612",
            ]
        );
    }

    #[test]
    fn range_end_is_the_prefix_with_its_last_byte_raised() {
        assert_eq!(
            range_end("/registry/pods/ns/"),
            b"/registry/pods/ns0".to_vec()
        );
        assert_eq!(range_end("a"), b"b".to_vec());
    }

    #[test]
    fn reads_the_pods_cache_revision_only() {
        assert_eq!(
            pods_cache_revision(
                "apiserver_watch_cache_resource_version{group=\"\",resource=\"pods\"} 9415"
            ),
            Some(9415)
        );
        assert_eq!(
            pods_cache_revision(
                "apiserver_watch_cache_resource_version{group=\"\",resource=\"events\"} 9415"
            ),
            None
        );
        assert_eq!(
            pods_cache_revision("etcd_debugging_mvcc_pending_events_total 612"),
            None
        );
    }

    #[test]
    fn backlogs_split_at_the_cache() {
        let pod = |etcd_at, revision, watched_at| PodTimes {
            etcd_at,
            revision,
            watched_at,
        };
        let pods = [
            pod(0.0, 10, Some(50.0)),
            pod(10.0, 11, Some(300.0)),
            pod(20.0, 12, Some(320.0)),
            pod(400.0, 13, None),
        ];
        // At 100 ms the cache is at revision 10: two delivered Pods not in it. At 200 ms it
        // holds all three, none watched beyond the first. At 500 the fourth is delivered and
        // in the cache but never watched.
        let samples = [(100.0, 10), (200.0, 12), (500.0, 13)];
        assert_eq!(worst_backlogs(&samples, &pods), (2, 2));
        assert_eq!(worst_backlogs(&[], &pods), (0, 0));
    }
}
