//! The HTTP API's routes as `template.yaml` declares them, and API Gateway's choice among them:
//! which function a request reaches, as deployed.

use serde_yaml::Value;

/// One route: `METHOD /path` to a function (its binary's name).
#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub binary: String,
    pub function: String,
}

impl Route {
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Every `HttpApi` event of every function in the template at the workspace root.
pub fn routes() -> Vec<Route> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    routes_of(&std::fs::read_to_string(path).expect("template.yaml"))
}

/// The same, from a template's text.
pub fn routes_of(text: &str) -> Vec<Route> {
    // CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`) arrive as tagged values; routes
    // use plain strings.
    let doc: Value = serde_yaml::from_str(text).expect("template.yaml is YAML");
    let mut routes = Vec::new();
    for (name, resource) in doc["Resources"].as_mapping().expect("Resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let properties = &event["Properties"];
            routes.push(Route {
                method: properties["Method"]
                    .as_str()
                    .expect("a route's Method")
                    .to_uppercase(),
                path: properties["Path"]
                    .as_str()
                    .expect("a route's Path")
                    .to_owned(),
                binary: binary.clone(),
                function: name.as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    routes
}

/// How a route's path matches `path`: `None`, or its specificity (API Gateway picks the
/// most specific match: literal segments over `{param}` over a greedy `{proxy+}`).
fn matches(route: &str, path: &str) -> Option<(usize, usize, usize)> {
    let pattern: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (mut literal, mut params) = (0, 0);
    for (i, part) in pattern.iter().enumerate() {
        if part.starts_with('{') && part.ends_with("+}") {
            // Greedy: one or more remaining segments.
            return (segments.len() > i && segments[i..].iter().all(|s| !s.is_empty()))
                .then_some((0, literal, params));
        }
        let segment = segments.get(i)?;
        if part.starts_with('{') && part.ends_with('}') {
            if segment.is_empty() {
                return None;
            }
            params += 1;
        } else if part == segment {
            literal += 1;
        } else {
            return None;
        }
    }
    (pattern.len() == segments.len()).then_some((1, literal, params))
}

/// The route API Gateway chooses for `method path`, if any (a request no route matches is
/// API Gateway's own 404, never a function's).
pub fn route_for<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<&'a Route> {
    routes
        .iter()
        .filter(|r| r.method == "ANY" || r.method == method)
        .filter_map(|r| matches(&r.path, path).map(|rank| (rank, r.method != "ANY", r)))
        .max_by_key(|(rank, exact_method, _)| (*rank, *exact_method))
        .map(|(_, _, r)| r)
}

/// A concrete path for an OpenAPI path template (`/v1/plans/{id}` → `/v1/plans/x1`).
pub fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "x1" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_route_wins() {
        let routes = routes_of(
            r#"
Resources:
  A:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: a } }
    Properties:
      Events:
        Greedy: { Type: HttpApi, Properties: { Path: "/v1/x/{proxy+}", Method: ANY } }
        Exact: { Type: HttpApi, Properties: { Path: /v1/x, Method: GET } }
  B:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: b } }
    Properties:
      Events:
        Param: { Type: HttpApi, Properties: { Path: "/v1/x/{id}/y", Method: ANY } }
"#,
        );
        let to = |m: &str, p: &str| route_for(&routes, m, p).map(|r| r.binary.as_str());
        assert_eq!(to("GET", "/v1/x"), Some("a"));
        assert_eq!(to("POST", "/v1/x"), None);
        assert_eq!(to("GET", "/v1/x/1"), Some("a"));
        assert_eq!(to("GET", "/v1/x/1/y"), Some("b"));
        assert_eq!(to("GET", "/v1/x/1/z"), Some("a"));
        assert_eq!(to("GET", "/v2"), None);
    }
}
