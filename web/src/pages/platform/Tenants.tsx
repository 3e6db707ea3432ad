import { useEffect, useState } from "react";
import { Link } from "react-router";
import { useGet, usePager } from "../../hooks";
import type { Page, Tenant } from "../../api/types";
import { Card, Empty, PagerFor, StatusBadge, WhenLoaded } from "../../components/ui";
import { formatDate } from "../../format";

/** Every tenant, newest first, searchable by name or id. */
export function TenantsList() {
  const [query, setQuery] = useState("");
  const [debounced, setDebounced] = useState("");
  useEffect(() => {
    const t = setTimeout(() => setDebounced(query.trim()), 250);
    return () => clearTimeout(t);
  }, [query]);
  const pager = usePager(`/v1/tenants?limit=20${debounced ? `&q=${encodeURIComponent(debounced)}` : ""}`);
  const tenants = useGet<Page<Tenant>>(pager.path);
  return (
    <div className="page">
      <h1>Tenants</h1>
      <Card>
        <div className="search">
          <label htmlFor="tenant-search">Search</label>
          <input
            id="tenant-search"
            type="search"
            placeholder="Name or id"
            maxLength={100}
            value={query}
            onChange={(e) => setQuery(e.target.value)}
          />
        </div>
        <WhenLoaded state={tenants} fresh>
          {() =>
            tenants.data?.data.length ? (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Status</th>
                      <th scope="col" className="num">
                        Members
                      </th>
                      <th scope="col">Created</th>
                    </tr>
                  </thead>
                  <tbody>
                    {tenants.data.data.map((t) => (
                      <tr key={t.id}>
                        <td>
                          <Link to={`/tenants/${t.id}`}>{t.name}</Link>
                          <div className="hint">{t.id}</div>
                        </td>
                        <td>
                          <StatusBadge status={t.status} />
                        </td>
                        <td className="num">{t.member_count}</td>
                        <td>{formatDate(t.created_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <Empty>{debounced ? `No tenant matches “${debounced}” on this page.` : "No tenants yet."}</Empty>
            )
          }
        </WhenLoaded>
        <PagerFor pager={pager} next={tenants.data?.next_cursor} />
      </Card>
    </div>
  );
}
