import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { ApiClient, sessionTokenStore } from "./api/client";
import type { AuthResponse, Me, Role } from "./api/types";

interface SessionState {
  api: ApiClient;
  me: Me | null;
  role: Role | null;
  /** Why the last session ended, shown on the sign-in page. */
  endedBecause: string | null;
  loading: boolean;
  signIn(email: string, password: string): Promise<void>;
  signUp(body: { email: string; password: string; name: string; tenant_name: string }): Promise<void>;
  signOut(): Promise<void>;
  reload(): Promise<void>;
  /** Signs in with tokens another call returned (an accepted invitation, a tenant switch). */
  adopt(answer: AuthResponse): Promise<void>;
}

const Session = createContext<SessionState | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null>(null);
  const [loading, setLoading] = useState(true);
  const [endedBecause, setEndedBecause] = useState<string | null>(null);
  const api = useMemo(
    () =>
      new ApiClient({
        store: sessionTokenStore(),
        onSessionEnded: (reason) => {
          setMe(null);
          setEndedBecause(reason === "expired" ? "Your session has expired. Please sign in again." : null);
        },
      }),
    [],
  );

  const reload = useCallback(async () => {
    if (!api.signedIn) {
      setMe(null);
      setLoading(false);
      return;
    }
    try {
      setMe(await api.get<Me>("/v1/auth/me"));
    } catch {
      setMe(null);
    } finally {
      setLoading(false);
    }
  }, [api]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const adopt = useCallback(
    async (answer: AuthResponse) => {
      api.adopt(answer.tokens);
      setEndedBecause(null);
      await reload();
    },
    [api, reload],
  );

  const value: SessionState = {
    api,
    me,
    role: me ? (me.user.platform_admin ? "platform_admin" : me.role) : null,
    endedBecause,
    loading,
    signIn: async (email, password) => adopt(await api.post<AuthResponse>("/v1/auth/login", { email, password }, { anonymous: true })),
    signUp: async (body) => adopt(await api.post<AuthResponse>("/v1/auth/register", body, { anonymous: true })),
    signOut: async () => {
      await api.logout();
      setMe(null);
      window.location.hash = "#/";
    },
    reload,
    adopt,
  };
  return <Session.Provider value={value}>{children}</Session.Provider>;
}

export function useSession(): SessionState {
  const session = useContext(Session);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}
