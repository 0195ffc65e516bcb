//! With `SOURCEBUILD_BENCH_PPROF=DIR`, a CPU profile of kube-apiserver (its `/debug/pprof`,
//! on by default) is kept for each load that asks for one, as `DIR/<name>.pprof`: where the
//! API server's time goes in a burst, the bound of create -> Pod. Read it with
//! `go tool pprof -top DIR/<name>.pprof`.

use std::time::Duration;

use futures::AsyncReadExt;
use kube::Client;

/// A profile being taken; [`Profile::finish`] waits for it and writes it out.
pub struct Profile(Option<tokio::task::JoinHandle<()>>);

impl Profile {
    /// Starts a profile of the next `length` of the API server's CPU, when asked for.
    pub fn start(admin: &Client, name: &str, length: Duration) -> Self {
        let Some(dir) = std::env::var_os("SOURCEBUILD_BENCH_PPROF") else {
            return Self(None);
        };
        let (admin, to) = (
            admin.clone(),
            std::path::Path::new(&dir).join(format!("{name}.pprof")),
        );
        let seconds = length.as_secs().max(1);
        // Where every goroutine waits a few seconds in, when a burst's watches lag most.
        let (dump_admin, dump_to) = (admin.clone(), to.with_extension("goroutines.txt"));
        tokio::spawn(async move {
            tokio::time::sleep(length / 2).await;
            let request = http::Request::get("/debug/pprof/goroutine?debug=2")
                .body(Vec::new())
                .expect("a GET without a body");
            let dumped = dump_admin
                .request_text(request)
                .await
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    std::fs::create_dir_all(dump_to.parent().expect("DIR/name"))
                        .and_then(|_| std::fs::write(&dump_to, text))
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = dumped {
                eprintln!(
                    "bench: goroutines of the API server for {}: {e}",
                    dump_to.display()
                );
            }
        });
        Self(Some(tokio::spawn(async move {
            let request = http::Request::get(format!("/debug/pprof/profile?seconds={seconds}"))
                .body(Vec::new())
                .expect("a GET without a body");
            let mut profile = Vec::new();
            let taken = match admin.request_stream(request).await {
                Ok(mut body) => body
                    .read_to_end(&mut profile)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let kept = taken.and_then(|_| {
                std::fs::create_dir_all(to.parent().expect("DIR/name"))
                    .and_then(|_| std::fs::write(&to, &profile))
                    .map_err(|e| e.to_string())
            });
            match kept {
                Ok(()) => eprintln!("bench: API server profile in {}", to.display()),
                Err(e) => eprintln!("bench: profiling the API server for {}: {e}", to.display()),
            }
        })))
    }

    /// Waits for the profile to be written (it ends `length` after it started).
    pub async fn finish(self) {
        if let Some(task) = self.0 {
            let _ = task.await;
        }
    }
}
