import { useSession } from "../../session";
import { useAction, useGet, usePager } from "../../hooks";
import type { Notification, Page } from "../../api/types";
import { Card, Empty, ErrorNotice, PagerFor, WhenLoaded } from "../../components/ui";
import { formatDateTime, notificationText } from "../../format";

export function Notifications() {
  const { api } = useSession();
  const pager = usePager("/v1/notifications?limit=20");
  const notes = useGet<Page<Notification>>(pager.path);
  const act = useAction();
  return (
    <div className="page">
      <h1>Notifications</h1>
      <Card>
        <ErrorNotice error={act.error} />
        <WhenLoaded state={notes}>
          {() =>
            notes.data?.data.length ? (
              <ul className="notifications">
                {notes.data.data.map((n) => (
                  <li key={n.id} className={n.read ? "read" : "unread"}>
                    <div>
                      <strong>{n.read ? "" : "● "}</strong>
                      {notificationText(n)}
                      <div className="hint">{formatDateTime(n.created_at)}</div>
                    </div>
                    {!n.read && (
                      <button
                        type="button"
                        disabled={act.busy}
                        onClick={() =>
                          void act.run(async () => {
                            await api.post(`/v1/notifications/${n.id}/read`, {});
                            notes.reload();
                          })
                        }
                      >
                        Mark read
                      </button>
                    )}
                  </li>
                ))}
              </ul>
            ) : (
              <Empty>No notifications. You are told here when usage nears a limit or a payment keeps failing.</Empty>
            )
          }
        </WhenLoaded>
        <PagerFor pager={pager} next={notes.data?.next_cursor} />
      </Card>
    </div>
  );
}
