//! The report's "Data roles" section: `oodlab audit`'s table, closest pairs and contact sheet
//! for each split (docs/audit.md).

use std::path::Path;

use oodlab_report::document::{Block, Document, Figure, Table, TextCell};

/// Closest pairs listed in the report (the sheet draws as many).
const LISTED: usize = 10;

/// Appends the section; returns the contact sheets written into `out/figures`.
pub async fn section(doc: &mut Document, home: &Path, out: &Path, exp: &oodlab_spec::Experiment) -> anyhow::Result<usize> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    doc.push(Block::Heading(2, "Data roles".into()));
    doc.push(Block::Paragraph(format!(
        "Pairs of images shared by two data roles (`oodlab audit`, docs/audit.md): exact (equal decoded pixels) / near \
         (perceptual hashes within {} of 64 bits and 32 × 32 thumbnails correlating ≥ {}); on the diagonal, pairs within one role.",
        exp.audit.near_distance, exp.audit.near_correlation
    )));
    let mut sheets = 0;
    for run in super::audit::representatives(exp) {
        let (sets, f) = super::audit::split_findings(home, exp, run, exp.audit.show.min(LISTED), threads).await?;
        doc.push(Block::Heading(3, format!("Split {} (the data of run `{}`, seed {})", run.split, run.run_id, run.seed)));
        let names: Vec<&str> = f.roles.iter().map(|(n, _)| n.as_str()).collect();
        let mut header = vec!["role".to_string(), "images".to_string()];
        header.extend(names.iter().map(|n| n.to_string()));
        let rows = f
            .matrix()
            .into_iter()
            .map(|(a, size, row)| {
                let mut cells = vec![TextCell::plain(a), TextCell::plain(&size.to_string())];
                cells.extend(
                    row.iter().map(|c| TextCell::plain(&c.map_or(String::new(), |c| format!("{} / {}", c.exact_pairs, c.near_pairs)))),
                );
                cells
            })
            .collect();
        doc.push(Block::Table(Table { header, rows, caption: Some("Exact / near pairs of images.".into()) }));
        if let Some(by) = &f.features {
            sheets += features_part(doc, out, run.split, &sets, by)?;
        }
        if f.closest.is_empty() {
            doc.push(Block::Paragraph("No two roles share an image, exactly or nearly.".into()));
            continue;
        }
        let header = ["kind", "role", "index", "position", "role", "index", "position"].iter().map(|h| h.to_string()).collect();
        let rows = f
            .closest
            .iter()
            .map(|p| {
                let kind = if p.exact { "exact".to_string() } else { format!("{} bits, r {:.3}", p.distance, p.correlation) };
                [
                    kind,
                    p.a_role.clone(),
                    p.a_index.to_string(),
                    p.a_position.to_string(),
                    p.b_role.clone(),
                    p.b_index.to_string(),
                    p.b_position.to_string(),
                ]
                .iter()
                .map(|c| TextCell::plain(c))
                .collect()
            })
            .collect();
        doc.push(Block::Table(Table {
            header,
            rows,
            caption: Some("The closest pairs between two roles (position: in the file the image was loaded from).".into()),
        }));
        let png = format!("figures/audit-split{}.png", run.split);
        super::audit::write_sheet(&out.join(&png), &sets, &super::audit::hash_pairs(&f))?;
        doc.push(Block::Figure(Figure {
            svg: String::new(),
            png,
            caption: format!("Split {}: the closest pairs above, side by side, one a row in the table's order.", run.split),
        }));
        sheets += 1;
    }
    Ok(sheets)
}

/// The comparison by a finished baseline's features: the table, the most alike pairs and their
/// sheet; returns the sheets written.
fn features_part(
    doc: &mut Document,
    out: &Path,
    split: usize,
    sets: &super::audit::Roles,
    by: &oodlab_audit::features::ByFeatures,
) -> anyhow::Result<usize> {
    let mut header = vec!["role".to_string(), "images".to_string()];
    header.extend(by.roles.iter().map(|(n, _)| n.clone()));
    let rows = by
        .matrix()
        .into_iter()
        .map(|(a, size, row)| {
            let mut cells = vec![TextCell::plain(a), TextCell::plain(&size.to_string())];
            cells.extend(row.iter().map(|c| TextCell::plain(&c.map_or(String::new(), |c| c.b_near.to_string()))));
            cells
        })
        .collect();
    doc.push(Block::Table(Table {
        header,
        rows,
        caption: Some(format!(
            "By the penultimate features of baseline run `{}`: images of the column's role whose nearest image of the row's role has a \
             centred cosine ≥ {} (the outlier pool has no saved features).",
            by.run_id, by.cosine
        )),
    }));
    if by.closest.is_empty() {
        return Ok(0);
    }
    let header = ["cosine", "role", "index", "position", "role", "index", "position"].iter().map(|h| h.to_string()).collect();
    let rows = by
        .closest
        .iter()
        .map(|p| {
            [
                format!("{:.5}", p.cosine),
                p.a_role.clone(),
                p.a_index.to_string(),
                p.a_position.to_string(),
                p.b_role.clone(),
                p.b_index.to_string(),
                p.b_position.to_string(),
            ]
            .iter()
            .map(|c| TextCell::plain(c))
            .collect()
        })
        .collect();
    doc.push(Block::Table(Table { header, rows, caption: Some("The most alike pairs by features.".into()) }));
    let png = format!("figures/audit-split{split}-features.png");
    super::audit::write_sheet(&out.join(&png), sets, &super::audit::feature_pairs(by))?;
    doc.push(Block::Figure(Figure {
        svg: String::new(),
        png,
        caption: format!("Split {split}: the most alike pairs by features, side by side, in the table's order."),
    }));
    Ok(1)
}
