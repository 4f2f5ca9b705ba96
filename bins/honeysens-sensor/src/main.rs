//! `honeysens-sensor`: the sensor agent binary. The agent itself arrives with the sensor-agent
//! issue; until then this binary only reports its version.

fn main() {
    let arch = honeysens_sensor::core::model::Architecture::Amd64;
    println!(
        "honeysens-sensor {} (agent not yet available; built for {arch})",
        env!("CARGO_PKG_VERSION")
    );
}
