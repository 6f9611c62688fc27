//! The experiment page's "Data roles" section (issue #34): the latest `oodlab audit` of each
//! split as the store records it — every pair of roles' exact / near counts (the diagonal: pairs
//! within a role) and the closest pairs between two roles. Drawn from the recorded JSON alone.

use oodlab_store::AuditRow;
use serde_json::Value;

use crate::html::esc;

/// The section, or nothing when the experiment was never audited.
pub fn section(audits: &[AuditRow]) -> String {
    if audits.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section id=\"audit\"><h2>Data roles</h2>");
    for a in audits {
        let Ok(v) = serde_json::from_str::<Value>(&a.findings) else { continue };
        let roles: Vec<(String, u64)> = v["roles"]
            .as_array()
            .map(|r| r.iter().map(|x| (x[0].as_str().unwrap_or("").to_string(), x[1].as_u64().unwrap_or(0))).collect())
            .unwrap_or_default();
        let near = &v["near"];
        out.push_str(&format!(
            "<h3>Split {} <small>the data of run <a href=\"/runs/{}\">{}</a>, seed {}; audited {}</small></h3>\
             <p class=\"audit\">Pairs of images, exact / near (hashes within {} of 64 bits, pixels correlating ≥ {}); the diagonal: within one role.</p>",
            a.split,
            esc(&a.run_id),
            esc(&a.run_id),
            a.seed,
            esc(&a.made_at),
            near["distance"],
            near["correlation"]
        ));
        out.push_str("<table class=\"audit\"><tr><th>role</th><th>images</th>");
        for (r, _) in &roles {
            out.push_str(&format!("<th>{}</th>", esc(r)));
        }
        out.push_str("</tr>");
        let cells = v["cells"].as_array().cloned().unwrap_or_default();
        for (i, (a_role, size)) in roles.iter().enumerate() {
            out.push_str(&format!("<tr><th>{}</th><td>{size}</td>", esc(a_role)));
            for (j, (b_role, _)) in roles.iter().enumerate() {
                let cell = cells.iter().find(|c| c["a"] == a_role.as_str() && c["b"] == b_role.as_str());
                match cell {
                    Some(c) if j >= i => {
                        let (e, n) = (c["exact_pairs"].as_u64().unwrap_or(0), c["near_pairs"].as_u64().unwrap_or(0));
                        // A shared image between two roles is the finding: marked.
                        let class = if i != j && e > 0 { " class=\"leak\"" } else { "" };
                        out.push_str(&format!("<td{class}>{e} / {n}</td>"));
                    }
                    _ => out.push_str("<td></td>"),
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>");
        let closest = v["closest"].as_array().cloned().unwrap_or_default();
        if !closest.is_empty() {
            out.push_str("<table class=\"audit-pairs\"><tr><th>kind</th><th>role</th><th>position</th><th>role</th><th>position</th></tr>");
            for p in &closest {
                let kind = if p["exact"] == true {
                    "exact".to_string()
                } else {
                    format!("{} bits, r {:.3}", p["distance"], p["correlation"].as_f64().unwrap_or(0.0))
                };
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&kind),
                    esc(p["a_role"].as_str().unwrap_or("")),
                    p["a_position"],
                    esc(p["b_role"].as_str().unwrap_or("")),
                    p["b_position"]
                ));
            }
            out.push_str("</table>");
        }
    }
    out.push_str("</section>");
    out
}
