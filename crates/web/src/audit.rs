//! The experiment page's "Data roles" section (issue #34): the latest `oodlab audit` of each
//! split as the store records it — every pair of roles' exact / near counts (the diagonal: pairs
//! within a role) and the closest pairs between two roles; and, where a finished baseline's
//! features were compared, that table and its most alike pairs. Drawn from the recorded JSON
//! alone.

use oodlab_audit::features::ByFeatures;
use oodlab_audit::Findings;
use oodlab_store::AuditRow;

use crate::html::esc;

/// The section, or nothing when the experiment was never audited.
pub fn section(audits: &[AuditRow]) -> String {
    if audits.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section id=\"audit\"><h2>Data roles</h2>");
    for a in audits {
        // (A record this version cannot read is left out, not shown half.)
        let Ok(f) = serde_json::from_str::<Findings>(&a.findings) else { continue };
        out.push_str(&format!(
            "<h3>Split {} <small>the data of run <a href=\"/runs/{}\">{}</a>, seed {}; audited {}</small></h3>\
             <p class=\"audit\">Pairs of images, exact / near (hashes within {} of 64 bits, pixels correlating ≥ {}); the diagonal: within one role.</p>",
            a.split,
            esc(&a.run_id),
            esc(&a.run_id),
            a.seed,
            esc(&a.made_at),
            f.near.distance,
            f.near.correlation
        ));
        out.push_str("<table class=\"audit\"><tr><th>role</th><th>images</th>");
        for (r, _) in &f.roles {
            out.push_str(&format!("<th>{}</th>", esc(r)));
        }
        out.push_str("</tr>");
        for (role, size, row) in f.matrix() {
            out.push_str(&format!("<tr><th>{}</th><td>{size}</td>", esc(role)));
            for cell in row {
                match cell {
                    Some(c) => {
                        // A shared image between two roles is the finding: marked.
                        let class = if c.a != c.b && c.exact_pairs > 0 { " class=\"leak\"" } else { "" };
                        out.push_str(&format!("<td{class}>{} / {}</td>", c.exact_pairs, c.near_pairs));
                    }
                    None => out.push_str("<td></td>"),
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>");
        if !f.closest.is_empty() {
            out.push_str("<table class=\"audit-pairs\"><tr><th>kind</th><th>role</th><th>position</th><th>role</th><th>position</th></tr>");
            for p in &f.closest {
                let kind = if p.exact { "exact".to_string() } else { format!("{} bits, r {:.3}", p.distance, p.correlation) };
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&kind),
                    esc(&p.a_role),
                    p.a_position,
                    esc(&p.b_role),
                    p.b_position
                ));
            }
            out.push_str("</table>");
        }
        if let Some(by) = &f.features {
            out.push_str(&features(by));
        }
    }
    out.push_str("</section>");
    out
}

/// The comparison by a finished baseline's features: per pair of roles, the images of the
/// column's role whose nearest image of the row's role is that alike; the most alike pairs.
fn features(by: &ByFeatures) -> String {
    let mut out = format!(
        "<p class=\"audit\">By the features of baseline run <a href=\"/runs/{}\">{}</a>: images of the column's role whose nearest image of the row's role has a centred cosine ≥ {}.</p>\
         <table class=\"audit\"><tr><th>role</th><th>images</th>",
        esc(&by.run_id),
        esc(&by.run_id),
        by.cosine
    );
    for (r, _) in &by.roles {
        out.push_str(&format!("<th>{}</th>", esc(r)));
    }
    out.push_str("</tr>");
    for (role, size, row) in by.matrix() {
        out.push_str(&format!("<tr><th>{}</th><td>{size}</td>", esc(role)));
        for cell in row {
            match cell {
                Some(c) if c.b_near > 0 => out.push_str(&format!("<td class=\"leak\">{}</td>", c.b_near)),
                Some(c) => out.push_str(&format!("<td>{}</td>", c.b_near)),
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    if !by.closest.is_empty() {
        out.push_str("<table class=\"audit-pairs\"><tr><th>cosine</th><th>role</th><th>position</th><th>role</th><th>position</th></tr>");
        for p in &by.closest {
            out.push_str(&format!(
                "<tr><td>{:.5}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.cosine,
                esc(&p.a_role),
                p.a_position,
                esc(&p.b_role),
                p.b_position
            ));
        }
        out.push_str("</table>");
    }
    out
}
