//! `kubectl sourcebuild`: build an image from a local directory in the cluster, follow builds,
//! read their logs and status. Argument parsing and exit codes only; the work is in
//! `sourcebuild::plugin`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sourcebuild::plugin::commands::{self, BuildOptions};
use sourcebuild::plugin::spec::{BuildRequest, default_name};
use sourcebuild::plugin::{self, PluginError};

const EXIT_CODES: &str = "\
Exit status:
  0    the build succeeded (build, rebuild) or the command did what it was asked
  1    the build failed or was cancelled (the reason, message and log snippet are printed),
       or the logs asked for are gone
  2    bad arguments or a directory that cannot be built: nothing was pushed or written
  3    the registry refused the source or did not answer: no SourceBuild was written
  4    the cluster refused or could not be reached (kubeconfig, context, RBAC, not found)
  130  following stopped (Ctrl-C or --follow-timeout): the build goes on in the cluster";

const BUILD_EXAMPLES: &str = "\
Examples:
  kubectl sourcebuild build ./my-app --image registry.example.com/team/app:1.0
  IMAGE=$(kubectl sourcebuild build . --image registry.example.com/team/app:1.0 \\
      --builder-image quay.io/sclorg/python-312-c9s:c9s --env DEBUG=1 -n team)

Building an unchanged tree again changes nothing and prints the same image.";

#[derive(Parser)]
#[command(
    name = "kubectl-sourcebuild",
    bin_name = "kubectl sourcebuild",
    version,
    about = "Build container images from source in the cluster, the Source-to-Image way",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    cluster: Cluster,
    #[command(subcommand)]
    command: Command,
}

/// kubectl's own flags: kubeconfig comes from KUBECONFIG or ~/.kube/config.
#[derive(Args)]
struct Cluster {
    /// The kubeconfig context to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// The namespace (default: the context's, else `default`).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Pack DIR, push it as an OCI artifact, apply a SourceBuild pinned to it and follow the
    /// build; prints the image (REPO@sha256:...) alone on stdout.
    #[command(after_help = BUILD_EXAMPLES)]
    Build(Box<BuildArgs>),
    /// Print the logs of the current build (or of build N of the current generation).
    #[command(
        after_help = "Examples:\n  kubectl sourcebuild logs my-app -f\n  kubectl sourcebuild logs my-app --build 2"
    )]
    Logs {
        /// The SourceBuild.
        name: String,
        /// Follow the logs as they come.
        #[arg(short, long)]
        follow: bool,
        /// A build number of the current generation (see `status`).
        #[arg(long)]
        build: Option<i64>,
    },
    /// A person's summary of a SourceBuild: phase, image, source, builder, how long, the last failure.
    Status {
        /// The SourceBuild.
        name: String,
    },
    /// The SourceBuilds of the namespace.
    List,
    /// Build the current spec again (the sourcebuild.dev/rebuild annotation) and follow it.
    Rebuild {
        /// The SourceBuild.
        name: String,
        #[command(flatten)]
        follow: FollowArgs,
    },
}

#[derive(Args)]
struct FollowArgs {
    /// Stop following after this long (the build goes on), e.g. 45m.
    #[arg(long = "follow-timeout", default_value = "2h", value_parser = humantime::parse_duration)]
    follow_timeout: Duration,
    /// Do not stream the build's logs, only its phases.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct BuildArgs {
    /// The directory to build.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The image to push, REPO[:TAG].
    #[arg(long)]
    image: String,
    /// The SourceBuild's name (default: the directory's name).
    #[arg(long)]
    name: Option<String>,
    /// The S2I builder image (default: the operator's).
    #[arg(long, alias = "build-image")]
    builder_image: Option<String>,
    /// An environment variable for assemble and the image, NAME=VALUE; repeatable.
    #[arg(long = "env", short = 'e')]
    env: Vec<String>,
    /// Build this sub-directory of DIR.
    #[arg(long)]
    context_dir: Option<String>,
    /// A kubernetes.io/dockerconfigjson Secret with the cluster's push credentials.
    #[arg(long)]
    push_secret: Option<String>,
    /// The build's deadline in the cluster (spec.timeout), a Go duration such as 30m.
    #[arg(long)]
    timeout: Option<String>,
    /// Where the source artifact is pushed (default: <REPO>/source).
    #[arg(long)]
    source_repository: Option<String>,
    /// A registry (host[:port]) reached over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    #[command(flatten)]
    follow: FollowArgs,
}

async fn run(cli: Cli) -> Result<(), PluginError> {
    // Arguments and the directory are checked before the cluster is asked anything.
    let build = match &cli.command {
        Command::Build(args) => {
            let options = build_options(args)?;
            let packed = commands::pack(&options)?;
            Some((options, packed))
        }
        _ => None,
    };
    let (client, namespace) = plugin::connect(
        cli.cluster.context.as_deref(),
        cli.cluster.namespace.as_deref(),
    )
    .await?;
    match cli.command {
        Command::Build(_) => {
            let (options, packed) = build.expect("made above");
            let image = commands::build(client, &namespace, &options, packed).await?;
            println!("{image}");
        }
        Command::Rebuild { name, follow } => {
            let image = commands::rebuild(
                client,
                &namespace,
                &name,
                follow.follow_timeout,
                !follow.quiet,
            )
            .await?;
            println!("{image}");
        }
        Command::Logs {
            name,
            follow,
            build,
        } => commands::logs(client, &namespace, &name, follow, build).await?,
        Command::Status { name } => {
            print!("{}", commands::status(client, &namespace, &name).await?)
        }
        Command::List => print!("{}", commands::list(client, &namespace).await?),
    }
    Ok(())
}

fn build_options(args: &BuildArgs) -> Result<BuildOptions, PluginError> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_name(&args.dir).ok_or_else(|| {
            PluginError::BadInput(format!(
                "{}: not a directory (or no name can be made from it: use --name)",
                args.dir.display()
            ))
        })?,
    };
    Ok(BuildOptions {
        dir: args.dir.clone(),
        context_dir: args.context_dir.clone(),
        request: BuildRequest {
            name,
            image: args.image.clone(),
            source_repository: args.source_repository.clone(),
            builder_image: args.builder_image.clone(),
            env: args.env.clone(),
            push_secret: args.push_secret.clone(),
            timeout: args.timeout.clone(),
        },
        insecure_registries: args.insecure_registries.clone(),
        push_timeout: Duration::from_secs(10 * 60),
        follow_limit: args.follow.follow_timeout,
        logs: !args.follow.quiet,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // kube's and the registry client's TLS; ring, as the operator uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Library warnings (a left-out file, an ignored token) reach the user on stderr; RUST_LOG
    // says more.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The walk's own warning about a link out of the tree repeats the error.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,sourcebuild::s2i::context=error")
                }),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .try_init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !error.to_string().contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                source = cause.source();
            }
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}
