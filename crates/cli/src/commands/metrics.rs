//! `oodlab metrics --id FILE --ood FILE`: OOD metrics of two score files.

use std::path::Path;

use crate::args::{Format, MetricsArgs};
use crate::output::{num, Table};

fn read_scores(path: &Path) -> anyhow::Result<Vec<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: f64 = line
            .parse()
            .map_err(|_| crate::invalid(format!("{}:{}: `{line}` is not a number; expected one score per line", path.display(), i + 1)))?;
        out.push(v);
    }
    Ok(out)
}

pub fn metrics(args: MetricsArgs) -> anyhow::Result<i32> {
    let (id, ood) = (read_scores(&args.id)?, read_scores(&args.ood)?);
    let m = oodlab_metrics::ood_metrics(&id, &ood).map_err(|e| crate::invalid(e.to_string()))?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string(&m)?);
        return Ok(0);
    }
    let mut t = Table::new(vec!["auroc", "fpr95", "aupr_in", "aupr_out", "n_id", "n_ood"]);
    t.push(vec![num(m.auroc), num(m.fpr95), num(m.aupr_in), num(m.aupr_out), id.len().to_string(), ood.len().to_string()]);
    print!("{}", t.render(args.format));
    Ok(0)
}
