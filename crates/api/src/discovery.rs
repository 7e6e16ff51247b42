//! `GET /events` (docker's `events.Message`, with the legacy `status`/`id`/`from` fields
//! Registrator reads) and `GET /catalog` (berth's service catalog: every name with the
//! endpoints that answer to it, and the index a blocking query waits past).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// The answer of `GET /catalog`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Catalog {
    pub index: u64,
    pub services: Vec<Service>,
}

/// One entry of the service catalog: a name and every endpoint that answers to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Service {
    pub name: String,
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogEndpoint {
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub container_name: String,
    pub network: String,
    pub address: Option<String>,
    #[serde(rename = "AddressV6")]
    pub address_v6: Option<String>,
    pub ports: Vec<CatalogPort>,
    pub labels: BTreeMap<String, String>,
    /// In a cluster, the node an endpoint of another node is on (its published ports are
    /// on that node's address); absent for this node's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogPort {
    pub private_port: u16,
    #[serde(rename = "Type")]
    pub proto: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "HostIP")]
    pub host_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registrator_style_event_round_trips() {
        let raw = r#"{"status":"start","id":"abc","from":"sleep","Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"ip.app":"10.42.0.7","name":"web"}},"scope":"local","time":1,"timeNano":1000000000}"#;
        // Attributes in sorted order, as dockerd (Go) writes maps.
        let m: Message = serde_json::from_str(raw).unwrap();
        assert_eq!(m.actor.attributes["ip.app"], "10.42.0.7");
        assert_eq!(serde_json::to_string(&m).unwrap(), raw);
        let net = r#"{"Type":"network","Action":"create","Actor":{"ID":"n","Attributes":{}},"scope":"local","time":0,"timeNano":0}"#;
        let n: Message = serde_json::from_str(net).unwrap();
        assert_eq!(n.status, None);
        assert_eq!(serde_json::to_string(&n).unwrap(), net);
    }

    #[test]
    fn a_catalog_answer_round_trips() {
        let raw = r#"{"Index":7,"Services":[{"Name":"web","Endpoints":[{"ContainerID":"c","ContainerName":"web","Network":"app","Address":"10.0.0.2","AddressV6":null,"Ports":[{"PrivatePort":80,"Type":"tcp","HostIP":"0.0.0.0","HostPort":8080}],"Labels":{}}]}]}"#;
        let c: Catalog = serde_json::from_str(raw).unwrap();
        assert_eq!(c.services[0].endpoints[0].ports[0].host_port, Some(8080));
        assert_eq!(serde_json::to_string(&c).unwrap(), raw);
    }
}
