//! Metric families built straight from the values a scrape read, in the `prometheus` crate's
//! data model, for its text encoder: no registry, no per-series hashing, so that a scrape of
//! tens of thousands of series stays cheap.

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

pub struct Family {
    names: &'static [&'static str],
    family: MetricFamily,
}

impl Family {
    fn new(name: &str, help: &str, kind: MetricType, names: &'static [&'static str]) -> Self {
        let mut family = MetricFamily::default();
        family.set_name(name.to_string());
        family.set_help(help.to_string());
        family.set_field_type(kind);
        Self { names, family }
    }

    /// A counter family (`name` ends in `_total`) with these label names.
    pub fn counter(name: &str, help: &str, names: &'static [&'static str]) -> Self {
        Self::new(name, help, MetricType::COUNTER, names)
    }

    pub fn gauge(name: &str, help: &str, names: &'static [&'static str]) -> Self {
        Self::new(name, help, MetricType::GAUGE, names)
    }

    /// One series: label values in the order of the family's label names. Each label set
    /// must come once (the caller sums before).
    pub fn add(&mut self, values: &[&str], value: f64) {
        debug_assert_eq!(values.len(), self.names.len());
        let labels = self
            .names
            .iter()
            .zip(values)
            .map(|(n, v)| {
                let mut pair = LabelPair::default();
                pair.set_name((*n).to_string());
                pair.set_value((*v).to_string());
                pair
            })
            .collect();
        let mut metric = Metric::default();
        metric.set_label(labels);
        if self.family.get_field_type() == MetricType::COUNTER {
            let mut c = Counter::default();
            c.set_value(value);
            metric.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            metric.set_gauge(g);
        }
        self.family.mut_metric().push(metric);
    }

    pub fn into_inner(self) -> MetricFamily {
        self.family
    }
}
