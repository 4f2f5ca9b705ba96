//! Applies the sensor's network settings to its interface through netlink.
//!
//! The server tells the sensor how its interface should be configured
//! ([`NetworkConfig`] plus an optional MAC override). [`NetConfigurator`] compares that with the
//! interface's current state (read over an rtnetlink socket, and `resolv.conf` for DNS) and
//! changes only what differs, so calling [`NetConfigurator::apply`] on every poll is cheap and a
//! second call with the same input reports no [`Change`]s.
//!
//! What each mode does:
//!
//! * [`NetworkConfig::Static`]: the link is brought up; the interface's addresses of the
//!   configured address's family become exactly that address (others are removed, IPv6
//!   link-local `fe80::/10` addresses are left alone, addresses of the other family are left
//!   alone); the default route on this interface is replaced when its gateway differs and removed
//!   when no gateway is configured; the DNS servers are written to the `resolv.conf` path
//!   (atomically: temporary file plus rename) when they differ.
//! * [`NetworkConfig::Dhcp`]: the link is brought up; addresses, routes and `resolv.conf` are
//!   the DHCP client's business. **The agent does not implement DHCP itself.** When the configurator switches into DHCP mode it starts the configured DHCP
//!   client command once ([`DhcpCommand`], default `dhclient -d <interface>`), after removing the
//!   statically configured (permanent, non-link-local) addresses and default routes left on the
//!   interface, and reports [`Change::DhcpStarted`]. The client is expected to stay in the
//!   foreground: the configurator keeps it as a child process, does not restart it, and kills it
//!   when switching to static configuration ([`Change::DhcpStopped`]) or when the configurator is
//!   dropped. With [`NetConfigurator::with_dhcp_client`]`(None)` DHCP is left to the operating
//!   system: the agent only brings the link up and touches no addresses.
//! * [`NetworkConfig::Unconfigured`]: the host manages the interface; nothing is changed at all,
//!   the MAC override is ignored (a DHCP client this configurator started earlier keeps running).
//!
//! A MAC override is validated before anything is touched ([`NetError::InvalidMac`]) and set
//! only when it differs: the link is set down, the address changed, and the link set up again.
//!
//! Everything here needs `CAP_NET_ADMIN` in the interface's network namespace, and write access
//! to the `resolv.conf` path for static DNS.

use futures_util::TryStreamExt;
use honeysens_core::model::NetworkConfig;
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

/// Errors while reading or applying the network configuration.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The configured interface does not exist (in this network namespace).
    #[error("no such network interface: {0}")]
    NoSuchInterface(String),
    /// A netlink request failed; the message names the operation and the kernel's answer.
    #[error("netlink: {0}")]
    Netlink(String),
    /// The MAC override is not a unicast `aa:bb:cc:dd:ee:ff` address; nothing was changed.
    #[error("invalid MAC address: {0:?}")]
    InvalidMac(String),
    /// The desired configuration cannot be applied as given (e.g. a gateway of the wrong family).
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
    /// The DHCP client command could not be started.
    #[error("starting the DHCP client {command:?}: {source}")]
    DhcpClient {
        /// The program that failed to start.
        command: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Reading or writing `resolv.conf` failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// One thing [`NetConfigurator::apply`] changed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The link was set up.
    LinkUp,
    /// The MAC address was set to this value (lower-case `aa:bb:cc:dd:ee:ff`).
    Mac(String),
    /// This address was added to the interface.
    AddressAdded(IpNet),
    /// This address was removed from the interface.
    AddressRemoved(IpNet),
    /// The default route now goes via this gateway on the interface.
    DefaultRoute(IpAddr),
    /// A default route on the interface was removed.
    DefaultRouteRemoved,
    /// `resolv.conf` now lists these name servers.
    Dns(Vec<IpAddr>),
    /// The DHCP client command was started.
    DhcpStarted,
    /// The DHCP client this configurator started was stopped (switch to static configuration).
    DhcpStopped,
}

/// The interface's current state, as read by [`NetConfigurator::current`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetState {
    /// The link is administratively up (`IFF_UP`).
    pub up: bool,
    /// Hardware address, lower-case `aa:bb:cc:dd:ee:ff`; `None` for links without one.
    pub mac: Option<String>,
    /// All IPv4 and IPv6 addresses on the interface (including IPv6 link-local ones).
    pub addresses: Vec<IpNet>,
    /// Gateways of the default routes (main table) leaving through this interface, IPv4 first.
    pub default_gateways: Vec<IpAddr>,
    /// Name servers listed in the `resolv.conf` file, in order; empty when it does not exist.
    pub dns: Vec<IpAddr>,
}

/// The DHCP client the agent starts when switching into DHCP mode.
///
/// Every `{interface}` in `args` is replaced by the interface name. The program must stay in the
/// foreground (e.g. `dhclient -d`, `udhcpc -f`, `dhcpcd -B`) so the agent can stop it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpCommand {
    /// Program name or path (looked up in `PATH`).
    pub program: String,
    /// Arguments; `{interface}` is replaced by the interface name.
    pub args: Vec<String>,
}

impl DhcpCommand {
    /// A command from a program and its arguments.
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        DhcpCommand {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    fn args_for(&self, interface: &str) -> Vec<String> {
        self.args
            .iter()
            .map(|a| a.replace("{interface}", interface))
            .collect()
    }
}

impl Default for DhcpCommand {
    /// `dhclient -d {interface}` (ISC dhclient in the foreground).
    fn default() -> Self {
        DhcpCommand::new("dhclient", ["-d", "{interface}"])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Dhcp,
    Static,
    Unconfigured,
}

#[derive(Debug, Default)]
struct ApplyState {
    mode: Option<Mode>,
    dhcp_child: Option<tokio::process::Child>,
}

/// Reads and applies the network configuration of one interface over rtnetlink.
///
/// Holds a netlink [`Handle`] whose connection task runs on the tokio runtime `new` was called
/// on; the socket belongs to the network namespace of the thread that called `new`. Calls to
/// [`apply`](Self::apply) are serialised.
#[derive(Debug)]
pub struct NetConfigurator {
    handle: Handle,
    interface: String,
    resolv_conf: PathBuf,
    dhcp_client: Option<DhcpCommand>,
    state: Mutex<ApplyState>,
}

struct Link {
    index: u32,
    up: bool,
    mac: Option<Vec<u8>>,
}

struct DefaultRoute {
    gateway: Option<IpAddr>,
    message: RouteMessage,
}

impl NetConfigurator {
    /// Opens a netlink connection (spawning its task on the current tokio runtime) for
    /// `interface`, which must exist; DNS goes to `resolv_conf`. The DHCP client is
    /// [`DhcpCommand::default`].
    pub async fn new(interface: &str, resolv_conf: PathBuf) -> Result<Self, NetError> {
        let (connection, handle, _messages) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        let configurator = NetConfigurator {
            handle,
            interface: interface.to_owned(),
            resolv_conf,
            dhcp_client: Some(DhcpCommand::default()),
            state: Mutex::new(ApplyState::default()),
        };
        configurator.link().await?;
        Ok(configurator)
    }

    /// Sets the DHCP client started when switching into DHCP mode; `None` leaves DHCP to the
    /// operating system (the agent then only brings the link up).
    #[must_use]
    pub fn with_dhcp_client(mut self, command: Option<DhcpCommand>) -> Self {
        self.dhcp_client = command;
        self
    }

    /// The interface this configurator manages.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Reads the current state: link up, MAC, addresses, default route gateways and DNS servers.
    pub async fn current(&self) -> Result<NetState, NetError> {
        let link = self.link().await?;
        let addresses = self
            .addresses(link.index)
            .await?
            .iter()
            .filter_map(address_of)
            .collect();
        let mut default_gateways = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            for route in self.default_routes(link.index, family).await? {
                default_gateways.extend(route.gateway);
            }
        }
        Ok(NetState {
            up: link.up,
            mac: link.mac.as_deref().map(format_mac),
            addresses,
            default_gateways,
            dns: read_nameservers(&self.resolv_conf)?,
        })
    }

    /// Applies the desired configuration and returns what it changed (empty when nothing
    /// differed). See the [module docs](self) for what each mode does.
    pub async fn apply(
        &self,
        desired: &NetworkConfig,
        mac: Option<&str>,
    ) -> Result<Vec<Change>, NetError> {
        if *desired == NetworkConfig::Unconfigured {
            // The host owns the interface: not even the MAC override is looked at.
            self.state.lock().await.mode = Some(Mode::Unconfigured);
            return Ok(Vec::new());
        }
        let mac = mac.map(parse_mac).transpose()?;
        if let NetworkConfig::Static {
            address, gateway, ..
        } = desired
            && let Some(gw) = gateway
            && address.addr().is_ipv4() != gw.is_ipv4()
        {
            return Err(NetError::InvalidConfig(format!(
                "gateway {gw} is not of the same family as {address}"
            )));
        }
        let mut state = self.state.lock().await;
        let mut changes = Vec::new();
        match desired {
            NetworkConfig::Unconfigured => return Ok(changes),
            NetworkConfig::Dhcp => {
                self.apply_link(mac.as_deref(), &mut changes).await?;
                self.apply_dhcp(&mut state, &mut changes).await?;
                state.mode = Some(Mode::Dhcp);
            }
            NetworkConfig::Static {
                address,
                gateway,
                dns,
            } => {
                if let Some(mut child) = state.dhcp_child.take() {
                    stop_child(&mut child).await;
                    changes.push(Change::DhcpStopped);
                }
                self.apply_link(mac.as_deref(), &mut changes).await?;
                let index = self.link().await?.index;
                self.apply_address(index, *address, &mut changes).await?;
                self.apply_gateway(index, *address, *gateway, &mut changes)
                    .await?;
                self.apply_dns(dns, &mut changes)?;
                state.mode = Some(Mode::Static);
            }
        }
        if !changes.is_empty() {
            tracing::info!(interface = %self.interface, ?changes, "network configuration applied");
        }
        Ok(changes)
    }

    async fn apply_link(
        &self,
        mac: Option<&[u8]>,
        changes: &mut Vec<Change>,
    ) -> Result<(), NetError> {
        let link = self.link().await?;
        let mut up = link.up;
        if let Some(mac) = mac
            && link.mac.as_deref() != Some(mac)
        {
            if up {
                self.set_link(
                    LinkUnspec::new_with_index(link.index).down().build(),
                    "setting link down",
                )
                .await?;
            }
            self.set_link(
                LinkUnspec::new_with_index(link.index)
                    .address(mac.to_vec())
                    .build(),
                "setting MAC address",
            )
            .await?;
            changes.push(Change::Mac(format_mac(mac)));
            if up {
                self.set_link(
                    LinkUnspec::new_with_index(link.index).up().build(),
                    "setting link up",
                )
                .await?;
            }
            up = self.link().await?.up;
        }
        if !up {
            self.set_link(
                LinkUnspec::new_with_index(link.index).up().build(),
                "setting link up",
            )
            .await?;
            changes.push(Change::LinkUp);
        }
        Ok(())
    }

    async fn apply_dhcp(
        &self,
        state: &mut ApplyState,
        changes: &mut Vec<Change>,
    ) -> Result<(), NetError> {
        let Some(command) = &self.dhcp_client else {
            return Ok(());
        };
        if state.mode == Some(Mode::Dhcp) {
            if let Some(child) = &mut state.dhcp_child
                && let Ok(Some(status)) = child.try_wait()
            {
                tracing::warn!(interface = %self.interface, %status, "DHCP client exited");
                state.dhcp_child = None;
            }
            return Ok(());
        }
        if let Some(child) = &mut state.dhcp_child
            && matches!(child.try_wait(), Ok(None))
        {
            // Dhcp -> Unconfigured -> Dhcp: the client we started is still running.
            return Ok(());
        }
        // Drop what static configuration left behind, then hand the interface to the client.
        let index = self.link().await?.index;
        for message in self.addresses_secondaries_first(index).await? {
            let Some(net) = address_of(&message) else {
                continue;
            };
            if is_link_local(&net) || !is_permanent(&message) {
                continue;
            }
            self.del_address(message, net).await?;
            changes.push(Change::AddressRemoved(net));
        }
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            for route in self.default_routes(index, family).await? {
                self.del_route(route.message).await?;
                changes.push(Change::DefaultRouteRemoved);
            }
        }
        let args = command.args_for(&self.interface);
        let child = tokio::process::Command::new(&command.program)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| NetError::DhcpClient {
                command: command.program.clone(),
                source,
            })?;
        tracing::info!(interface = %self.interface, program = %command.program, ?args, "DHCP client started");
        state.dhcp_child = Some(child);
        changes.push(Change::DhcpStarted);
        Ok(())
    }

    async fn apply_address(
        &self,
        index: u32,
        address: IpNet,
        changes: &mut Vec<Change>,
    ) -> Result<(), NetError> {
        let mut present = false;
        // Remove before adding: a new address in the subnet of an old primary would become its
        // secondary and vanish with it.
        for message in self.addresses_secondaries_first(index).await? {
            let Some(net) = address_of(&message) else {
                continue;
            };
            if net.addr().is_ipv4() != address.addr().is_ipv4() || is_link_local(&net) {
                continue;
            }
            if net == address {
                present = true;
            } else {
                self.del_address(message, net).await?;
                changes.push(Change::AddressRemoved(net));
            }
        }
        if !present {
            self.handle
                .address()
                .add(index, address.addr(), address.prefix_len())
                .execute()
                .await
                .map_err(|e| netlink(&format!("adding address {address}"), e))?;
            changes.push(Change::AddressAdded(address));
        }
        Ok(())
    }

    async fn apply_gateway(
        &self,
        index: u32,
        address: IpNet,
        gateway: Option<IpAddr>,
        changes: &mut Vec<Change>,
    ) -> Result<(), NetError> {
        let family = family_of(address.addr());
        let routes = self.default_routes(index, family).await?;
        match gateway {
            Some(gw) => {
                if let [only] = routes.as_slice()
                    && only.gateway == Some(gw)
                {
                    return Ok(());
                }
                for route in routes {
                    self.del_route(route.message).await?;
                }
                let message = match gw {
                    IpAddr::V4(v4) => RouteMessageBuilder::<Ipv4Addr>::new()
                        .output_interface(index)
                        .gateway(v4)
                        .build(),
                    IpAddr::V6(v6) => RouteMessageBuilder::<Ipv6Addr>::new()
                        .output_interface(index)
                        .gateway(v6)
                        .build(),
                };
                self.handle
                    .route()
                    .add(message)
                    .replace()
                    .execute()
                    .await
                    .map_err(|e| netlink(&format!("adding default route via {gw}"), e))?;
                changes.push(Change::DefaultRoute(gw));
            }
            None => {
                for route in routes {
                    self.del_route(route.message).await?;
                    changes.push(Change::DefaultRouteRemoved);
                }
            }
        }
        Ok(())
    }

    fn apply_dns(&self, dns: &[IpAddr], changes: &mut Vec<Change>) -> Result<(), NetError> {
        let existing = match std::fs::read_to_string(&self.resolv_conf) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.into()),
        };
        if parse_nameservers(&existing) == dns {
            return Ok(());
        }
        write_atomically(&self.resolv_conf, &render_resolv_conf(&existing, dns))?;
        changes.push(Change::Dns(dns.to_vec()));
        Ok(())
    }

    async fn link(&self) -> Result<Link, NetError> {
        let mut links = self.handle.link().get().execute();
        while let Some(message) = links
            .try_next()
            .await
            .map_err(|e| netlink("listing links", e))?
        {
            if link_name(&message) == Some(self.interface.as_str()) {
                let mac = message.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Address(bytes) => Some(bytes.clone()),
                    _ => None,
                });
                return Ok(Link {
                    index: message.header.index,
                    up: message.header.flags.contains(LinkFlags::Up),
                    mac,
                });
            }
        }
        Err(NetError::NoSuchInterface(self.interface.clone()))
    }

    async fn set_link(&self, message: LinkMessage, what: &str) -> Result<(), NetError> {
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| netlink(&format!("{what} on {}", self.interface), e))
    }

    async fn addresses(&self, index: u32) -> Result<Vec<AddressMessage>, NetError> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| netlink("listing addresses", e))
    }

    /// The interface's addresses, secondaries first: removing a primary IPv4 address also drops
    /// its secondaries (unless `promote_secondaries` is set), so they are removed before it.
    async fn addresses_secondaries_first(
        &self,
        index: u32,
    ) -> Result<Vec<AddressMessage>, NetError> {
        let mut messages = self.addresses(index).await?;
        messages.sort_by_key(|m| !is_secondary(m));
        Ok(messages)
    }

    /// Removes an address; one that is already gone (`EADDRNOTAVAIL`) counts as removed.
    async fn del_address(&self, message: AddressMessage, net: IpNet) -> Result<(), NetError> {
        match self.handle.address().del(message).execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -EADDRNOTAVAIL => Ok(()),
            result => result.map_err(|e| netlink(&format!("removing address {net}"), e)),
        }
    }

    async fn default_routes(
        &self,
        index: u32,
        family: AddressFamily,
    ) -> Result<Vec<DefaultRoute>, NetError> {
        let mut query = RouteMessage::default();
        query.header.address_family = family;
        let routes: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|e| netlink("listing routes", e))?;
        Ok(routes
            .into_iter()
            .filter(|r| {
                r.header.address_family == family
                    && r.header.destination_prefix_length == 0
                    && r.header.kind == RouteType::Unicast
                    && route_table(r) == u32::from(RouteHeader::RT_TABLE_MAIN)
                    && r.attributes.contains(&RouteAttribute::Oif(index))
            })
            .map(|message| DefaultRoute {
                gateway: message.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
                    _ => None,
                }),
                message,
            })
            .collect())
    }

    async fn del_route(&self, message: RouteMessage) -> Result<(), NetError> {
        self.handle
            .route()
            .del(message)
            .execute()
            .await
            .map_err(|e| netlink("removing default route", e))
    }
}

async fn stop_child(child: &mut tokio::process::Child) {
    if let Err(e) = child.kill().await {
        tracing::warn!(error = %e, "stopping the DHCP client");
    }
}

fn netlink(what: &str, e: rtnetlink::Error) -> NetError {
    NetError::Netlink(format!("{what}: {e}"))
}

fn link_name(message: &LinkMessage) -> Option<&str> {
    message.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

/// The interface address of an address message (`IFA_LOCAL` for IPv4, else `IFA_ADDRESS`).
fn address_of(message: &AddressMessage) -> Option<IpNet> {
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    IpNet::new(local.or(address)?, message.header.prefix_len).ok()
}

/// `EADDRNOTAVAIL` on Linux.
const EADDRNOTAVAIL: i32 = 99;

fn is_secondary(message: &AddressMessage) -> bool {
    message.header.flags.contains(AddressHeaderFlags::Secondary)
        || message.attributes.iter().any(|a| {
            matches!(a, AddressAttribute::Flags(flags) if flags.contains(AddressFlags::Secondary))
        })
}

fn is_permanent(message: &AddressMessage) -> bool {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Flags(flags) => Some(flags.contains(AddressFlags::Permanent)),
            _ => None,
        })
        .unwrap_or(false)
}

fn is_link_local(net: &IpNet) -> bool {
    match net.addr() {
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
        IpAddr::V4(_) => false,
    }
}

fn family_of(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case, `-` also accepted as separator) into a unicast MAC.
fn parse_mac(text: &str) -> Result<Vec<u8>, NetError> {
    let invalid = || NetError::InvalidMac(text.to_owned());
    let bytes = text
        .split([':', '-'])
        .map(|part| {
            if part.len() == 2 {
                u8::from_str_radix(part, 16).map_err(|_| invalid())
            } else {
                Err(invalid())
            }
        })
        .collect::<Result<Vec<u8>, NetError>>()?;
    match bytes.as_slice() {
        [first, ..] if bytes.len() == 6 && first & 1 == 0 && bytes.iter().any(|b| *b != 0) => {
            Ok(bytes)
        }
        _ => Err(invalid()),
    }
}

fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn read_nameservers(path: &Path) -> Result<Vec<IpAddr>, NetError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_nameservers(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn parse_nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                // A scoped IPv6 server (`fe80::1%eth0`) is kept by its address.
                (Some("nameserver"), Some(addr)) => addr.split('%').next()?.parse().ok(),
                _ => None,
            }
        })
        .collect()
}

/// Keeps everything but the `nameserver` lines of `existing` and appends the desired servers.
fn render_resolv_conf(existing: &str, dns: &[IpAddr]) -> String {
    let mut out = String::new();
    for line in existing.lines() {
        if line.split_whitespace().next() != Some("nameserver") {
            out.push_str(line);
            out.push('\n');
        }
    }
    for server in dns {
        out.push_str(&format!("nameserver {server}\n"));
    }
    out
}

/// Writes through a temporary file in the same directory and renames it over `path`. When the
/// rename is refused because `path` is a mount point (a bind-mounted `resolv.conf` in a
/// container), the file is rewritten in place instead.
fn write_atomically(path: &Path, contents: &str) -> Result<(), NetError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "resolv.conf".to_owned());
    let tmp = dir.join(format!(".{name}.honeysens-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    match std::fs::rename(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => {
            let _ = std::fs::remove_file(&tmp);
            std::fs::write(path, contents)?;
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("02:AA:bb:cc:dd:0f").ok(),
            Some(vec![0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x0f])
        );
        assert_eq!(
            format_mac(&[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x0f]),
            "02:aa:bb:cc:dd:0f"
        );
        for bad in [
            "",
            "02:aa:bb:cc:dd",
            "02:aa:bb:cc:dd:ee:ff",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "02:aa:bb:cc:dd:g0",
            "2:aa:bb:cc:dd:e0",
        ] {
            assert!(
                matches!(parse_mac(bad), Err(NetError::InvalidMac(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn resolv_conf_keeps_other_lines() {
        let existing = "# generated\nsearch example.org\nnameserver 192.0.2.1\noptions ndots:2\nnameserver fe80::1%eth0\n";
        assert_eq!(
            parse_nameservers(existing),
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
        let dns: Vec<IpAddr> = vec!["198.51.100.53".parse().unwrap()];
        let rendered = render_resolv_conf(existing, &dns);
        assert_eq!(
            rendered,
            "# generated\nsearch example.org\noptions ndots:2\nnameserver 198.51.100.53\n"
        );
        assert_eq!(parse_nameservers(&rendered), dns);
    }

    #[test]
    fn dhcp_command_substitutes_interface() {
        let cmd = DhcpCommand::new("udhcpc", ["-f", "-i", "{interface}"]);
        assert_eq!(cmd.args_for("eth1"), ["-f", "-i", "eth1"]);
        assert_eq!(DhcpCommand::default().args_for("eth0"), ["-d", "eth0"]);
    }

    #[test]
    fn link_local_detection() {
        assert!(is_link_local(&"fe80::1/64".parse().unwrap()));
        assert!(is_link_local(&"febf::1/64".parse().unwrap()));
        assert!(!is_link_local(&"fec0::1/64".parse().unwrap()));
        assert!(!is_link_local(&"169.254.1.1/16".parse().unwrap()));
    }
}
