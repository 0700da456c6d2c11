"""What every document's context carries beyond its data: account, payment, address, salutation.

`document_parts` is called once per document by `pipeline.delivery.documents.build_contexts`,
by the sample contexts (`samples.py`, for `dunning templates check`) and by previews, so the
templates can rely on the same keys everywhere (they run with StrictUndefined).
"""

from __future__ import annotations

LETTER_CHANNELS = ("letter", "registered_letter")


def document_parts(ctx: dict, org: dict, *, channel: str | None, language: str) -> dict:
    """The context keys a document adds beyond its data (the same for dunning, collections, previews):

    - `account`: the creditor account for the document's currency (and the customer's country);
    - `payment_details`: the case's creditor reference, EPC QR code (EUR) or Swiss QR-bill (CHF), pay-now
      link (not `payment`: the templates have a macro of that name);
    - `address_lines`: the recipient block as the destination country's post wants it;
    - `recipient_kind`: `company` or `person` (the salutation);
    - `refused`: why the document must not be rendered (no account for its currency; a letter to an
      address the post cannot deliver), else None. A collection's transfer details take the same
      account and reference.
    """
    from pipeline.delivery.payment import payment_parts
    from pipeline.delivery.render.addresses import address_problem, has_address, is_company, postal_lines

    customer = ctx["customer"]
    case_id = ctx.get("case_id") or ctx["action_key"].split("/", 1)[0]
    account, payment, refused = payment_parts(org, case_id=case_id, currency=ctx["amounts"]["currency"],
                                              amount=ctx["amounts"]["total"], customer=customer, language=language,
                                              qr=channel != "sms")
    company = is_company(customer)
    if refused is None and channel in LETTER_CHANNELS and has_address(customer):
        # (a letter without any address is failed by the print batch, as before)
        problem = address_problem(customer)
        if problem:
            refused = f"the postal address cannot be delivered: {problem[0]}: {problem[1]}"
    collection = ctx.get("collection")
    if collection and account:
        collection["transfer"] = dict(collection.get("transfer") or {}, account_holder=account["holder"],
                                      iban=account["iban_display"], bic=account["bic"], bank=account["bank"],
                                      reference=payment["reference_display"])
    return {"account": account, "payment_details": payment, "recipient_kind": "company" if company else "person",
            "address_lines": postal_lines(customer, sender_country=org.get("country") or "",
                                          sender_locale=org.get("locale") or "en_GB", company=company),
            "refused": refused}
