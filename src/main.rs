//! `sourcebuild`: the operator, its build Pod's init step, and offline tools, in one binary.

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sourcebuild",
    version,
    about = "Build container images from source in Kubernetes, the Source-to-Image way"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the SourceBuild CustomResourceDefinition as YAML.
    Crd,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => print!("{}", sourcebuild::crd::crd_yaml()?),
    }
    Ok(())
}
