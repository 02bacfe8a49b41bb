package compile

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"swimlane.dev/swimlane/internal/snapshot"
)

// serviceEntries turns ServiceEntries into services: each host a service whose endpoints are
// the entry's endpoints (resolution STATIC, or DNS with endpoints) or the host itself, dialled
// by name (resolution DNS without endpoints, NONE).
func (c *compiler) serviceEntries() {
	for _, o := range c.set.ServiceEntries {
		se := o.Spec
		c.onlyFields(o.Errorf, "spec", se, "hosts", "ports", "location", "resolution", "endpoints", "exportTo")
		if len(se.GetPorts()) == 0 {
			c.fail(o.Errorf("spec.ports", "at least one port is required"))
			continue
		}
		if len(se.GetPorts()) > 1 {
			c.fail(o.Errorf("spec.ports[1]", "service entries with more than one port are not supported yet"))
		}
		port := se.GetPorts()[0]
		c.onlyFields(o.Errorf, "spec.ports[0]", port, "number", "protocol", "name", "targetPort")
		protocol := seProtocol(port.GetProtocol())
		if se.GetResolution() == networking.ServiceEntry_STATIC && len(se.GetEndpoints()) == 0 {
			c.fail(o.Errorf("spec.endpoints", "resolution STATIC needs endpoints"))
		}
		var endpoints []snapshot.Endpoint
		for i, e := range se.GetEndpoints() {
			path := fmt.Sprintf("spec.endpoints[%d]", i)
			c.onlyFields(o.Errorf, path, e, "address", "ports", "labels")
			target := int(port.GetNumber())
			if p, ok := e.GetPorts()[port.GetName()]; ok {
				target = int(p)
			} else if port.GetTargetPort() != 0 {
				target = int(port.GetTargetPort())
			}
			endpoints = append(endpoints, snapshot.Endpoint{
				Address: net.JoinHostPort(e.GetAddress(), strconv.Itoa(target)), Protocol: protocol,
				Workload: o.Name + "/" + e.GetAddress(), Labels: e.GetLabels(),
			})
		}
		for i, host := range se.GetHosts() {
			path := fmt.Sprintf("spec.hosts[%d]", i)
			if strings.HasPrefix(host, "*") {
				c.fail(o.Errorf(path, "wildcard hosts are not supported yet"))
				continue
			}
			if _, dup := c.services[host]; dup {
				c.fail(o.Errorf(path, "host %q is already a service", host))
				continue
			}
			svc := &snapshot.Service{Name: host, Port: int(port.GetNumber()), External: se.GetLocation() != networking.ServiceEntry_MESH_INTERNAL, Endpoints: endpoints}
			if len(endpoints) == 0 {
				// Dialled by name: the proxy resolves the host as the app would have.
				svc.Endpoints = []snapshot.Endpoint{{Address: net.JoinHostPort(host, strconv.Itoa(int(port.GetNumber()))), Protocol: protocol, Workload: o.Name}}
			}
			c.services[host] = svc
		}
	}
}

// seProtocol maps Istio port protocols: HTTPS, TLS, MongoDB and the like pass through as
// bytes (Swimlane does not terminate TLS for external hosts).
func seProtocol(p string) snapshot.Protocol {
	switch strings.ToUpper(p) {
	case "HTTP":
		return snapshot.HTTP
	case "HTTP2":
		return snapshot.HTTP2
	case "GRPC":
		return snapshot.GRPC
	}
	return snapshot.TCP
}
