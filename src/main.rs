//! `sourcebuild`: the operator, its build Pod's init step, and offline tools, in one binary.
//! Flags and wiring only; every subcommand is a call into the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use sourcebuild::controller::user_namespaces::{self, UserNamespaces};
use sourcebuild::controller::{self, ControllerConfig};
use sourcebuild::leader::{self, LeaseConfig};
use sourcebuild::metrics::{self, Metrics};
use sourcebuild::pod::BuildSettings;
use sourcebuild::telemetry::{self, LogFormat};
use sourcebuild::{contract, crd, prepare, render};

#[derive(Parser)]
#[command(
    name = "sourcebuild",
    version,
    about = "Build container images from source in Kubernetes, the Source-to-Image way",
    long_about = "Build container images from source in Kubernetes, the Source-to-Image way.\n\n\
        A SourceBuild names a source (git, ConfigMap, archive or OCI artifact), an S2I builder image and an\n\
        output image. The controller runs one build Pod per spec generation (and per rebuild\n\
        request or retry) and records the pushed image's digest in status."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Controller(ControllerArgs),
    /// The build Pod's init step: fetch the source and write the build context (in-Pod only).
    Prepare(PrepareArgs),
    /// The build Pod's last step: publish the pushed image's provenance, signed when a key is
    /// mounted (in-Pod only).
    Publish(PublishArgs),
    /// Show offline, with no cluster, what a SourceBuild manifest would produce.
    Render(RenderArgs),
    /// Print the SourceBuild CustomResourceDefinition as YAML.
    Crd,
}

/// Images used in build Pods.
#[derive(Args, Clone)]
struct ImageArgs {
    /// S2I builder image for SourceBuilds that do not name one.
    #[arg(
        long,
        env = "SOURCEBUILD_DEFAULT_BUILDER_IMAGE",
        default_value = "quay.io/sclorg/python-312-c9s:c9s"
    )]
    default_builder_image: String,
    /// Kaniko executor image for the build container.
    #[arg(
        long,
        env = "SOURCEBUILD_KANIKO_IMAGE",
        default_value = "ghcr.io/osscontainertools/kaniko:v1.28.3"
    )]
    kaniko_image: String,
    /// The operator's own image, which runs `sourcebuild prepare` as the init container.
    #[arg(
        long,
        env = "SOURCEBUILD_PREPARE_IMAGE",
        default_value = "sourcebuild-operator:0.1.0"
    )]
    prepare_image: String,
    /// A registry (`host[:port]`) reached over plain HTTP, by builds and by the fetch step.
    /// Repeatable; for a registry inside the cluster or on a test machine, never the internet.
    #[arg(
        long = "insecure-registry",
        env = "SOURCEBUILD_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,
    /// A Secret (in each SourceBuild's namespace) with a cosign key pair to sign images and
    /// their provenance with, for SourceBuilds without `spec.output.signing`. Unset: their
    /// provenance is published unsigned.
    #[arg(long, env = "SOURCEBUILD_SIGNING_KEY_SECRET")]
    signing_key_secret: Option<String>,
    /// The provenance's `builder.id`: a URI naming this operator and the cluster it runs in
    /// (the chart sets one from its release and `clusterName`).
    #[arg(
        long,
        env = "SOURCEBUILD_BUILDER_ID",
        default_value = "https://sourcebuild.dev/operator"
    )]
    builder_id: String,
}

impl ImageArgs {
    fn settings(&self) -> BuildSettings {
        BuildSettings {
            default_builder_image: self.default_builder_image.clone(),
            kaniko_image: self.kaniko_image.clone(),
            prepare_image: self.prepare_image.clone(),
            insecure_registries: self.insecure_registries.clone(),
            // The controller's and render's own `--user-namespaces`.
            user_namespaces: false,
            signing_key_secret: self.signing_key_secret.clone().filter(|s| !s.is_empty()),
            builder_id: self.builder_id.clone(),
        }
    }
}

#[derive(Args)]
struct ControllerArgs {
    #[command(flatten)]
    images: ImageArgs,
    /// Watch only these namespaces: repeat the flag or give a comma-separated list
    /// (default: all namespaces).
    #[arg(
        long = "namespace",
        env = "SOURCEBUILD_NAMESPACE",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "SOURCEBUILD_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Log format.
    #[arg(
        long,
        env = "SOURCEBUILD_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    log_format: LogFormat,
    /// Log filter: a level (info, debug) or RUST_LOG-style directives.
    #[arg(long, env = "SOURCEBUILD_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// This replica's name, shown as the reporting instance of Events and as the Lease holder.
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
    /// Elect a leader through a Lease, so that of several replicas only one reconciles.
    #[arg(long, env = "SOURCEBUILD_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease: the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(
        long,
        env = "SOURCEBUILD_LEASE_NAME",
        default_value = "sourcebuild-operator"
    )]
    lease_name: String,
    /// How long the Lease is valid without renewal: the longest a standby replica waits
    /// after the leader died (at least 2s).
    #[arg(long, env = "SOURCEBUILD_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: std::time::Duration,
    /// Also publish a Normal Event when each build starts and when it succeeds. Off by
    /// default: they are two API writes on every build's path, and the SourceBuild's status
    /// and `status.history` record the same. Warnings, cancellations, retries and source
    /// changes are always published.
    #[arg(long, env = "SOURCEBUILD_ROUTINE_EVENTS")]
    routine_events: bool,
    /// Run build Pods in a user namespace of their own (`hostUsers: false`), so that root in a
    /// build is an unprivileged user on the node: `auto` where the cluster supports it (asked
    /// once at start), `on`, or `off`. A SourceBuild may ask for the node's users
    /// (`spec.hostUsers: true`).
    #[arg(
        long,
        env = "SOURCEBUILD_USER_NAMESPACES",
        value_enum,
        default_value = "auto"
    )]
    user_namespaces: UserNamespaces,
}

#[derive(Args)]
struct PrepareArgs {
    /// Build context directory shared with the Kaniko container.
    #[arg(long, default_value = contract::WORKSPACE_DIR)]
    workspace: PathBuf,
    /// Scratch directory for the fetched source.
    #[arg(long, default_value = contract::SCRATCH_DIR)]
    scratch: PathBuf,
    /// Where the result is reported for the controller.
    #[arg(long, default_value = "/dev/termination-log")]
    termination_log: PathBuf,
    /// Where the git credentials Secret is mounted (if the source names one).
    #[arg(long, default_value = contract::GIT_SECRET_DIR)]
    git_secret_dir: PathBuf,
    /// Where the ConfigMap source is mounted.
    #[arg(long, default_value = contract::CONFIGMAP_DIR)]
    configmap_dir: PathBuf,
    /// Where the registry credentials (a docker config.json) are mounted; missing: anonymous.
    #[arg(long, default_value = contract::REGISTRY_AUTH_DIR)]
    registry_auth_dir: PathBuf,
    /// Where the OCI source's own credentials are mounted; missing: those of --registry-auth-dir.
    #[arg(long, default_value = contract::OCI_AUTH_DIR)]
    oci_auth_dir: PathBuf,
    /// Where the result is also left for the publish step (if the directory exists).
    #[arg(long, default_value = contract::RESULTS_DIR)]
    results_dir: PathBuf,
    /// Log format.
    #[arg(
        long,
        env = "SOURCEBUILD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Args)]
struct PublishArgs {
    /// Only check that the signing key loads (the step before the build).
    #[arg(long)]
    check_key: bool,
    /// Where prepare's result is.
    #[arg(long, default_value = contract::RESULTS_DIR)]
    results_dir: PathBuf,
    /// Kaniko's `<repository>@<digest>` file.
    #[arg(long, default_value_os_t = Path::new(contract::DIGEST_DIR).join(contract::DIGEST_FILE))]
    digest_file: PathBuf,
    /// Where the push credentials (a docker config.json) are mounted; missing: anonymous.
    #[arg(long, default_value = contract::REGISTRY_AUTH_DIR)]
    registry_auth_dir: PathBuf,
    /// Where the signing key Secret is mounted.
    #[arg(long, default_value = contract::SIGNING_KEY_DIR)]
    signing_key_dir: PathBuf,
    /// Where the result is reported for the controller.
    #[arg(long, default_value = "/dev/termination-log")]
    termination_log: PathBuf,
    /// Log format.
    #[arg(
        long,
        env = "SOURCEBUILD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Args)]
struct RenderArgs {
    /// A YAML file holding a SourceBuild (other documents in it are skipped).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// A local source tree standing in for the spec's source: prints the generated Dockerfile.
    #[arg(long)]
    source: Option<PathBuf>,
    /// With --source: write the whole build context (Dockerfile, upload/) into this directory.
    #[arg(long, requires = "source")]
    context: Option<PathBuf>,
    /// With --source: the builder image's config JSON (as `crane config IMAGE` prints it), for
    /// its S2I labels and USER; without it the s2i defaults apply.
    #[arg(long, requires = "source", value_name = "FILE")]
    builder_config: Option<PathBuf>,
    /// With --source: the builder image's manifest digest (`crane digest IMAGE`), to pin FROM
    /// as the build does.
    #[arg(long, requires = "source", value_name = "sha256:...")]
    builder_digest: Option<String>,
    /// Print the build Pod the controller would create.
    #[arg(long)]
    pod: bool,
    /// The controller's `--user-namespaces`, as it decided at start: `on` gives the build Pod
    /// `hostUsers: false` (unless the SourceBuild says `spec.hostUsers: true`), `off` leaves
    /// it out. `auto` is the controller's question to its cluster, and render has none: its
    /// log line `build Pods' user namespaces` says what `auto` became there.
    #[arg(long, value_enum, default_value = "off")]
    user_namespaces: UserNamespaces,
    #[command(flatten)]
    images: ImageArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // gix's HTTP transport brings rustls with aws-lc-rs while kube and reqwest bring ring; with
    // two providers compiled in, rustls refuses to guess, so the choice is made here, once.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("error: a TLS crypto provider was already installed");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Controller(args) => run_controller(args),
        Command::Prepare(args) => run_prepare(args),
        Command::Publish(args) => run_publish(args),
        Command::Render(args) => run_render(args),
        Command::Crd => crd::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .context("serializing the CRD"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. Our library errors already carry their cause's text
/// (status messages need it whole), so a cause already quoted is not repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run_controller(args: ControllerArgs) -> Result<()> {
    telemetry::init(args.log_format, &args.log_level).map_err(anyhow::Error::msg)?;
    sourcebuild::memory::limit_arenas(sourcebuild::memory::CONTROLLER_ARENAS);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
        let metrics = Metrics::new();
        let ready = Arc::new(AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind(args.metrics_addr)
            .await
            .with_context(|| format!("listening on --metrics-addr {}", args.metrics_addr))?;
        let server = axum::serve(listener, metrics::router(metrics.clone(), ready.clone()));
        tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "metrics server stopped");
            }
        });
        tokio::spawn(sourcebuild::memory::return_freed_memory(
            sourcebuild::memory::TRIM_PERIOD,
        ));
        let namespaces: Vec<String> = args
            .namespaces
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect();
        let mut settings = args.images.settings();
        settings.user_namespaces = match args.user_namespaces {
            UserNamespaces::On => true,
            UserNamespaces::Off => false,
            UserNamespaces::Auto => {
                // A namespace the operator may create Pods in: a watched one, else its own.
                let namespace = namespaces.first().unwrap_or(&args.lease_namespace);
                user_namespaces::supported(&client, namespace)
                    .await
                    .unwrap_or_else(|error| {
                        tracing::warn!(%error, "could not ask the API server about user namespaces; build Pods use the node's users");
                        false
                    })
            }
        };
        tracing::info!(
            mode = ?args.user_namespaces,
            on = settings.user_namespaces,
            "build Pods' user namespaces (hostUsers: false)"
        );
        metrics.set_user_namespaces(settings.user_namespaces);
        let config = ControllerConfig {
            namespaces,
            settings,
            instance: args.instance.clone(),
            routine_events: args.routine_events,
        };
        if !args.leader_elect {
            controller::run(client, config, metrics, ready).await;
            return Ok(());
        }
        let lease = LeaseConfig {
            namespace: args.lease_namespace,
            name: args.lease_name,
            identity: args.instance.unwrap_or_else(|| {
                format!(
                    "sourcebuild-{}-{}",
                    std::process::id(),
                    std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos())
                )
            }),
            duration: args.lease_duration,
        };
        // A standby is healthy and ready: it only waits for the Lease. Holding readiness back
        // would stall a rolling update that waits for the new replica to become ready.
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        let controller_client = client.clone();
        leader::lead(client, &lease, leader::shutdown_signal(), move || {
            controller::run(controller_client, config, metrics, ready)
        })
        .await?;
        Ok(())
    })
}

fn run_prepare(args: PrepareArgs) -> Result<()> {
    telemetry::init(args.log_format, "info").map_err(anyhow::Error::msg)?;
    let mounts = prepare::PrepareMounts {
        source: sourcebuild::source::SourceMounts {
            git_secret_dir: Some(args.git_secret_dir).filter(|dir| dir.is_dir()),
            configmap_dir: args.configmap_dir,
            ..Default::default()
        },
        docker_config: args.registry_auth_dir.join(contract::REGISTRY_AUTH_FILE),
        oci_docker_config: Some(args.oci_auth_dir.join(contract::REGISTRY_AUTH_FILE))
            .filter(|file| file.is_file()),
        results_dir: Some(args.results_dir).filter(|dir| dir.is_dir()),
    };
    prepare::run(
        &args.workspace,
        &args.scratch,
        &args.termination_log,
        &mounts,
    )?;
    Ok(())
}

fn run_publish(args: PublishArgs) -> Result<()> {
    telemetry::init(args.log_format, "info").map_err(anyhow::Error::msg)?;
    let mounts = sourcebuild::publish::PublishMounts {
        results_dir: args.results_dir,
        digest_file: args.digest_file,
        docker_config: args.registry_auth_dir.join(contract::REGISTRY_AUTH_FILE),
        signing_key_dir: args.signing_key_dir,
    };
    if args.check_key {
        sourcebuild::publish::check_key(&mounts, &args.termination_log)?;
    } else {
        sourcebuild::publish::run(&mounts, &args.termination_log)?;
    }
    Ok(())
}

fn run_render(args: RenderArgs) -> Result<()> {
    let sb = render::load_source_build(&args.file)?;
    let mut settings = args.images.settings();
    settings.user_namespaces = match args.user_namespaces {
        UserNamespaces::On => true,
        UserNamespaces::Off => false,
        UserNamespaces::Auto => anyhow::bail!(
            "--user-namespaces auto is the controller asking its cluster at start, and render has \
             no cluster: say on or off (the controller's log line \"build Pods' user namespaces\" \
             says what auto became)"
        ),
    };
    if args.source.is_none() && !args.pod {
        anyhow::bail!("nothing to render: give --source DIR (the Dockerfile) and/or --pod");
    }
    if let Some(source) = &args.source {
        let scratch;
        let context = match &args.context {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating --context {}", dir.display()))?;
                dir.clone()
            }
            None => {
                scratch = tempfile_dir()?;
                scratch.path().to_path_buf()
            }
        };
        let image = sourcebuild::pod::prepare_request(&sb, &settings).builder_image;
        let inputs = render::BuilderInputs {
            config: args.builder_config.clone(),
            digest: args.builder_digest.clone(),
        };
        let (builder, notes) = render::resolve_builder(&image, &inputs)?;
        for note in notes {
            eprintln!("note: {note}");
        }
        let (dockerfile, result) =
            render::render_context(&sb, &settings, &builder, source, &context)?;
        print!("{dockerfile}");
        eprintln!("dockerfile {}", result.dockerfile_sha256);
    }
    if args.pod {
        if args.source.is_some() {
            println!("---");
        }
        print!("{}", render::render_pod(&sb, &settings)?);
    }
    Ok(())
}

fn tempfile_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("sourcebuild-render-")
        .tempdir()
        .context("creating a temporary build context")
}
