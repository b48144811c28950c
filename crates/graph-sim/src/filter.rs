//! A small OData `$filter` evaluator over JSON entities.
//!
//! It covers what Graph clients send in practice: comparisons (`eq`, `ne`,
//! `gt`, `ge`, `lt`, `le`, `in`), `and`/`or`/`not`, parentheses,
//! `startswith`/`endswith`/`contains`, property paths with `/`, `$count` of a
//! collection, and lambdas (`any`/`all`) such as
//! `groupTypes/any(c:c eq 'Unified')`.

use serde_json::Value;

use crate::error::GraphError;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    Comma,
    Colon,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1
            }
            '\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    if i >= chars.len() {
                        return Err("unterminated string literal".into());
                    }
                    if chars[i] == '\'' {
                        if i + 1 < chars.len() && chars[i + 1] == '\'' {
                            v.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    v.push(chars[i]);
                    i += 1;
                }
                out.push(Tok::Str(v));
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !matches!(chars[i], ' ' | '(' | ')' | ',' | '\'' | '\t' | '\n')
                {
                    // A colon ends an identifier only inside lambdas (`c:c eq 'x'`);
                    // date-times such as 2024-01-01T10:00:00Z keep theirs.
                    if chars[i] == ':' && !looks_like_datetime(&chars[start..i]) {
                        break;
                    }
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.is_empty() {
                    return Err(format!("unexpected character '{c}'"));
                }
                if looks_like_number(&word) {
                    out.push(Tok::Num(
                        word.parse().map_err(|_| format!("bad number {word}"))?,
                    ));
                } else {
                    out.push(Tok::Ident(word));
                }
            }
        }
    }
    Ok(out)
}

fn looks_like_datetime(prefix: &[char]) -> bool {
    prefix.len() >= 11
        && prefix[0].is_ascii_digit()
        && prefix.contains(&'T')
        && prefix.contains(&'-')
}

fn looks_like_number(w: &str) -> bool {
    let mut chars = w.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_digit() || c == '-');
    first_ok && w.chars().skip(1).all(|c| c.is_ascii_digit() || c == '.') && w != "-"
}

#[derive(Debug, Clone)]
enum Expr {
    Lit(Value),
    Path(Vec<String>),
    List(Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(String, Box<Expr>, Box<Expr>),
    Func(String, Vec<Expr>),
    Lambda {
        collection: Vec<String>,
        all: bool,
        var: String,
        body: Box<Expr>,
    },
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(w))
    }
    fn expect(&mut self, t: Tok) -> Result<(), String> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            other => Err(format!("expected {t:?}, found {other:?}")),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr, String> {
        let left = self.primary()?;
        if let Some(Tok::Ident(op)) = self.peek() {
            let op = op.to_ascii_lowercase();
            if matches!(op.as_str(), "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "in") {
                self.pos += 1;
                let right = self.primary()?;
                return Ok(Expr::Cmp(op, Box::new(left), Box::new(right)));
            }
        }
        Ok(left)
    }
    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::LParen) => {
                // Either a parenthesised expression or a list for `in`.
                let first = self.or()?;
                if matches!(self.peek(), Some(Tok::Comma)) {
                    let mut items = vec![first];
                    while matches!(self.peek(), Some(Tok::Comma)) {
                        self.pos += 1;
                        items.push(self.or()?);
                    }
                    self.expect(Tok::RParen)?;
                    return Ok(Expr::List(items));
                }
                self.expect(Tok::RParen)?;
                Ok(first)
            }
            Some(Tok::Str(s)) => Ok(Expr::Lit(Value::String(s))),
            Some(Tok::Num(n)) => Ok(Expr::Lit(serde_json::json!(n))),
            Some(Tok::Ident(w)) => {
                let lower = w.to_ascii_lowercase();
                match lower.as_str() {
                    "true" => return Ok(Expr::Lit(Value::Bool(true))),
                    "false" => return Ok(Expr::Lit(Value::Bool(false))),
                    "null" => return Ok(Expr::Lit(Value::Null)),
                    _ => {}
                }
                if w.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    // Unquoted date-times and GUIDs compare as strings.
                    return Ok(Expr::Lit(Value::String(w)));
                }
                if matches!(self.peek(), Some(Tok::LParen)) {
                    // A function call, or a lambda on a path ending in any/all.
                    let segments: Vec<String> = w.split('/').map(str::to_string).collect();
                    let last = segments
                        .last()
                        .map(|s| s.to_ascii_lowercase())
                        .unwrap_or_default();
                    if (last == "any" || last == "all") && segments.len() > 1 {
                        self.pos += 1;
                        if matches!(self.peek(), Some(Tok::RParen)) {
                            self.pos += 1;
                            // `any()` without a body: collection not empty.
                            return Ok(Expr::Lambda {
                                collection: segments[..segments.len() - 1].to_vec(),
                                all: false,
                                var: String::new(),
                                body: Box::new(Expr::Lit(Value::Bool(true))),
                            });
                        }
                        let var = match self.next() {
                            Some(Tok::Ident(v)) => v,
                            other => {
                                return Err(format!("expected lambda variable, found {other:?}"));
                            }
                        };
                        self.expect(Tok::Colon)?;
                        let body = self.or()?;
                        self.expect(Tok::RParen)?;
                        return Ok(Expr::Lambda {
                            collection: segments[..segments.len() - 1].to_vec(),
                            all: last == "all",
                            var,
                            body: Box::new(body),
                        });
                    }
                    self.pos += 1;
                    let mut args = Vec::new();
                    if !matches!(self.peek(), Some(Tok::RParen)) {
                        args.push(self.or()?);
                        while matches!(self.peek(), Some(Tok::Comma)) {
                            self.pos += 1;
                            args.push(self.or()?);
                        }
                    }
                    self.expect(Tok::RParen)?;
                    return Ok(Expr::Func(lower, args));
                }
                Ok(Expr::Path(w.split('/').map(str::to_string).collect()))
            }
            other => Err(format!("unexpected token {other:?}")),
        }
    }
}

/// A parsed `$filter`, ready to test entities.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: Expr,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, GraphError> {
        let toks = tokenize(text).map_err(|e| invalid_filter(text, &e))?;
        let mut p = Parser { toks, pos: 0 };
        let expr = p.or().map_err(|e| invalid_filter(text, &e))?;
        if p.pos < p.toks.len() {
            return Err(invalid_filter(text, "trailing tokens"));
        }
        Ok(Filter { expr })
    }

    pub fn matches(&self, item: &Value) -> bool {
        truthy(&eval(&self.expr, item, &[]))
    }

    /// Property paths the filter reads (for checking them against a schema).
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_paths(&self.expr, &mut out);
        out
    }
}

fn collect_paths(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Path(p) => out.push(p.join("/")),
        Expr::List(items) | Expr::Func(_, items) => {
            items.iter().for_each(|i| collect_paths(i, out))
        }
        Expr::Not(a) => collect_paths(a, out),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) => {
            collect_paths(a, out);
            collect_paths(b, out);
        }
        Expr::Lambda { collection, .. } => out.push(collection.join("/")),
        Expr::Lit(_) => {}
    }
}

fn invalid_filter(text: &str, why: &str) -> GraphError {
    GraphError::bad_request(format!("Invalid filter clause: {why} (in '{text}')"))
}

fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

fn resolve<'a>(item: &'a Value, path: &[String], vars: &[(&str, &'a Value)]) -> Value {
    let mut cur: Value;
    let mut rest = path;
    if let Some(first) = path.first() {
        if let Some((_, v)) = vars.iter().rev().find(|(n, _)| *n == first) {
            cur = (*v).clone();
            rest = &path[1..];
        } else {
            cur = item.clone();
        }
    } else {
        return Value::Null;
    }
    for seg in rest {
        if seg == "$count" {
            cur = match &cur {
                Value::Array(a) => serde_json::json!(a.len()),
                _ => serde_json::json!(0),
            };
            continue;
        }
        cur = match &cur {
            Value::Object(m) => m
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(seg))
                .map(|(_, v)| v.clone())
                .unwrap_or(Value::Null),
            _ => Value::Null,
        };
    }
    cur
}

fn eval(e: &Expr, item: &Value, vars: &[(&str, &Value)]) -> Value {
    match e {
        Expr::Lit(v) => v.clone(),
        Expr::Path(p) => resolve(item, p, vars),
        Expr::List(items) => Value::Array(items.iter().map(|i| eval(i, item, vars)).collect()),
        Expr::Not(a) => Value::Bool(!truthy(&eval(a, item, vars))),
        Expr::And(a, b) => {
            Value::Bool(truthy(&eval(a, item, vars)) && truthy(&eval(b, item, vars)))
        }
        Expr::Or(a, b) => Value::Bool(truthy(&eval(a, item, vars)) || truthy(&eval(b, item, vars))),
        Expr::Cmp(op, a, b) => {
            let l = eval(a, item, vars);
            let r = eval(b, item, vars);
            Value::Bool(compare(op, &l, &r))
        }
        Expr::Func(name, args) => {
            let vals: Vec<Value> = args.iter().map(|a| eval(a, item, vars)).collect();
            let s = |i: usize| {
                vals.get(i)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_lowercase()
            };
            match name.as_str() {
                "startswith" => Value::Bool(s(0).starts_with(&s(1))),
                "endswith" => Value::Bool(s(0).ends_with(&s(1))),
                "contains" => Value::Bool(s(0).contains(&s(1))),
                "tolower" => Value::String(s(0)),
                "toupper" => Value::String(s(0).to_uppercase()),
                _ => Value::Null,
            }
        }
        Expr::Lambda {
            collection,
            all,
            var,
            body,
        } => {
            let coll = resolve(item, collection, vars);
            let items = match coll {
                Value::Array(a) => a,
                _ => Vec::new(),
            };
            let test = |v: &Value| {
                let mut scope: Vec<(&str, &Value)> = vars.to_vec();
                scope.push((var.as_str(), v));
                truthy(&eval(body, item, &scope))
            };
            if *all {
                Value::Bool(items.iter().all(test))
            } else {
                Value::Bool(items.iter().any(test))
            }
        }
    }
}

fn compare(op: &str, l: &Value, r: &Value) -> bool {
    if op == "in" {
        return match r {
            Value::Array(items) => items.iter().any(|i| equal(l, i)),
            other => equal(l, other),
        };
    }
    match op {
        "eq" => equal(l, r),
        "ne" => !equal(l, r),
        _ => {
            let ord = match (l, r) {
                (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
                (Value::String(a), Value::String(b)) => {
                    Some(a.to_lowercase().cmp(&b.to_lowercase()))
                }
                _ => None,
            };
            match (op, ord) {
                ("gt", Some(o)) => o.is_gt(),
                ("ge", Some(o)) => o.is_ge(),
                ("lt", Some(o)) => o.is_lt(),
                ("le", Some(o)) => o.is_le(),
                _ => false,
            }
        }
    }
}

fn equal(l: &Value, r: &Value) -> bool {
    match (l, r) {
        (Value::String(a), Value::String(b)) => {
            a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => l == r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(f: &str, v: Value) -> bool {
        Filter::parse(f).unwrap().matches(&v)
    }

    #[test]
    fn comparisons_and_logic() {
        let u = json!({"accountEnabled": true, "department": "Sales", "city": "Berlin", "n": 3});
        assert!(m("accountEnabled eq true", u.clone()));
        assert!(!m("accountEnabled eq false", u.clone()));
        assert!(m("department eq 'sales' and city ne 'Paris'", u.clone()));
        assert!(m("(department eq 'HR') or n ge 3", u.clone()));
        assert!(!m("not (n gt 2)", u.clone()));
        assert!(m("department in ('Legal', 'Sales')", u.clone()));
        assert!(m("startswith(city,'ber')", u.clone()));
    }

    #[test]
    fn lambdas_counts_and_dates() {
        let g = json!({"groupTypes": ["Unified"], "assignedLicenses": [{"skuId": "a"}],
                       "receivedDateTime": "2024-05-01T10:00:00Z"});
        assert!(m("groupTypes/any(c:c eq 'Unified')", g.clone()));
        assert!(!m("groupTypes/any(c:c eq 'DynamicMembership')", g.clone()));
        assert!(m("assignedLicenses/$count ne 0", g.clone()));
        assert!(m("assignedLicenses/any(x:x/skuId eq 'a')", g.clone()));
        assert!(m("receivedDateTime ge 2024-04-30T00:00:00Z", g.clone()));
        assert!(!m("receivedDateTime lt 2024-04-30T00:00:00Z", g));
    }

    #[test]
    fn malformed_filters_are_errors() {
        assert!(Filter::parse("department eq 'x").is_err());
        assert!(Filter::parse("(a eq 1").is_err());
        assert!(Filter::parse("a eq 1 b").is_err());
    }
}
