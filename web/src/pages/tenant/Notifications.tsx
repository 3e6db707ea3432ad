import { useSession } from "../../session";
import { useAction, useGet, usePager } from "../../hooks";
import type { Notification, Page } from "../../api/types";
import { Card, Empty, ErrorNotice, Loading, Pager } from "../../components/ui";
import { formatDateTime } from "../../format";

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
        {notes.loading && !notes.data ? (
          <Loading />
        ) : notes.error ? (
          <ErrorNotice error={notes.error} onRetry={notes.reload} />
        ) : notes.data?.data.length ? (
          <ul className="notifications">
            {notes.data.data.map((n) => (
              <li key={n.id} className={n.read ? "read" : "unread"}>
                <div>
                  <strong>{n.read ? "" : "● "}</strong>
                  {n.message}
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
          <Empty>No notifications. You are told here when usage nears a limit.</Empty>
        )}
        <Pager
          page={pager.page}
          hasPrevious={pager.hasPrevious}
          next={notes.data?.next_cursor}
          onPrevious={pager.previous}
          onNext={() => pager.next(notes.data?.next_cursor ?? null)}
        />
      </Card>
    </div>
  );
}
