"""herald_client against a real herald serve --dev."""

import json
import unittest

from herald_client import Herald, HeraldProblem, WebhookVerificationError, new_event_id, verify_webhook

from .herald import LossyProxy, Receiver, Server

TENANT = "acme"


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.addClassCleanup(cls.server.stop)
        cls.receiver = Receiver()
        cls.addClassCleanup(cls.receiver.close)
        cls.admin = Herald(cls.server.url, cls.server.admin_key, backoff=0.02)
        cls.admin.request("POST", "/v1/tenants", body={"id": TENANT, "name": "Acme"})
        for name in ("order.created", "page.item"):
            cls.admin.request("POST", "/v1/event-types", body={"name": name})

    def test_publish_retries_a_lost_answer_with_the_same_id(self):
        proxy = LossyProxy(self.server.url, lambda method, path: method == "POST" and path.endswith("/events"))
        self.addCleanup(proxy.close)
        out = Herald(proxy.url, self.server.admin_key, backoff=0.02).publish(TENANT, {"type": "order.created", "data": {"order": 1}})
        self.assertEqual(len(proxy.seen), 2, "one request whose answer was lost, one retry")
        ids = [json.loads(b)["id"] for b in proxy.seen]
        self.assertEqual(ids[0], ids[1])
        self.assertEqual(out["id"], ids[0])
        self.assertTrue(out["duplicate"], "the retry found the event the first attempt stored")
        stored = [e for e in self.admin.paginate(f"/v1/tenants/{TENANT}/events") if e["id"] == out["id"]]
        self.assertEqual(len(stored), 1)

    def test_publish_keeps_a_given_id(self):
        eid = new_event_id()
        first = self.admin.publish(TENANT, {"id": eid, "type": "order.created", "data": {}})
        again = self.admin.publish(TENANT, {"id": eid, "type": "order.created", "data": {}})
        self.assertEqual(first["id"], eid)
        self.assertFalse(first["duplicate"])
        self.assertTrue(again["duplicate"])

    def test_publish_batch_gives_ids_and_stores_nothing_twice(self):
        given = new_event_id()
        out = self.admin.publish_batch(TENANT, [{"type": "order.created", "data": {"order": 10}},
                                                {"id": given, "type": "order.created", "data": {"order": 11}}])
        self.assertEqual(len(out), 2)
        self.assertTrue(out[0]["id"].startswith("evt_"))
        self.assertEqual(out[1]["id"], given)
        self.assertEqual([p["duplicate"] for p in out], [False, False])
        again = self.admin.publish_batch(TENANT, [{"id": p["id"], "type": "order.created", "data": {}} for p in out])
        self.assertEqual([(p["id"], p["duplicate"]) for p in again], [(p["id"], True) for p in out])

    def test_problems_are_raised_naming_the_field(self):
        with self.assertRaises(HeraldProblem) as cm:
            self.admin.publish(TENANT, {"type": "no.such.type", "data": {}})
        p = cm.exception
        self.assertEqual((p.status, p.type, p.title), (422, "about:blank", "Unprocessable Entity"))
        self.assertIn("unknown event type", p.at("body.type")["message"])
        self.assertFalse(p.retryable)
        with self.assertRaises(HeraldProblem) as cm:
            self.admin.request("GET", f"/v1/tenants/{TENANT}/deliveries", query={"status": "dead"})
        self.assertEqual(cm.exception.status, 422)
        self.assertIn("unknown query parameter", cm.exception.at("query.status")["message"])
        with self.assertRaises(HeraldProblem) as cm:
            self.admin.request("GET", "/v1/tenants/nobody")
        self.assertEqual(cm.exception.status, 404)
        with self.assertRaises(HeraldProblem) as cm:
            Herald(self.server.url, "hk_admin_wrong").request("GET", "/v1/tenants")
        self.assertEqual(cm.exception.status, 401)

    def test_paginate_follows_next_cursor(self):
        ids = {self.admin.publish(TENANT, {"type": "page.item", "data": {"i": i}})["id"] for i in range(5)}
        pages = []
        client = Herald(self.server.url, self.server.admin_key)
        request = client.request

        def counting(method, path, **kw):
            pages.append(path)
            return request(method, path, **kw)

        client.request = counting
        seen = [e["id"] for e in client.paginate(f"/v1/tenants/{TENANT}/events", {"event_type": "page.item", "limit": 2})]
        self.assertEqual(sorted(seen), sorted(ids))
        self.assertEqual(len(pages), 3, "pages of 2, 2 and 1")

    def test_v1_deliveries_verify(self):
        ep = self.admin.request("POST", f"/v1/tenants/{TENANT}/endpoints",
                                body={"url": self.receiver.url + "/hmac", "event_types": ["order.created"]})
        secret = self.admin.request("GET", f"/v1/tenants/{TENANT}/endpoints/{ep['id']}/secret")["key"]
        pub = self.admin.publish(TENANT, {"type": "order.created", "data": {"order": 3}})
        _, headers, body = self.receiver.wait_for(
            "the delivery", lambda r: r[0] == "/hmac" and json.loads(r[2])["id"] == pub["id"])
        self.assertEqual(verify_webhook(secret, body, headers)["id"], pub["id"])
        with self.assertRaises(WebhookVerificationError):
            verify_webhook(secret, body.replace(b'"order":3', b'"order":4'), headers)
        with self.assertRaises(WebhookVerificationError):
            verify_webhook(secret, body, headers, now=int(headers["webhook-timestamp"]) + 6 * 60)


class VerifyTest(unittest.TestCase):
    def test_standard_webhooks_spec_vector(self):
        headers = {
            "Webhook-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "Webhook-Timestamp": "1614265330",
            "Webhook-Signature": "v1,bm9ub3RoZXJzaWduYXR1cmU= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        }
        body = b'{"test": 2432232314}'
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        self.assertEqual(verify_webhook(secret, body, headers, now=1614265330), {"test": 2432232314})
        with self.assertRaises(WebhookVerificationError):
            verify_webhook(secret, body, dict(headers, **{"Webhook-Id": "msg_other"}), now=1614265330)
        with self.assertRaises(WebhookVerificationError):
            verify_webhook("whpk_" + "A" * 44, body, headers, now=1614265330)


if __name__ == "__main__":
    unittest.main()
