"""The reply in the person's language, where a translation exists: the common reply phrases (what changed,
what was not understood) and the names of the usual subjects; the rest stays in English."""

from __future__ import annotations

import re

_N = r"([\d.]+)"
# English reply phrase -> per language; \1, \2 ... are the phrase's numbers and names
PHRASES: tuple[tuple[str, dict[str, str]], ...] = (
    (r"[Ss]tarted from the (.+?) template \(seed (\d+)\)", {
        "es": r"Empecé con la plantilla \1 (semilla \2)", "fr": r"J'ai commencé avec le modèle \1 (graine \2)",
        "de": r"Mit der Vorlage \1 begonnen (Seed \2)", "pt": r"Comecei com o modelo \1 (semente \2)",
        "it": r"Ho iniziato con il modello \1 (seme \2)", "zh": r"从\1模板开始（种子 \2）"}),
    (r"\b(\w+) (\d+)% slower", {
        "es": r"\1 un \2% más lento", "fr": r"\1 \2 % plus lent", "de": r"\1 \2 % langsamer",
        "pt": r"\1 \2% mais lento", "it": r"\1 \2% più lento", "zh": r"\1 放慢了 \2%"}),
    (r"\b(\w+) (\d+)% faster", {
        "es": r"\1 un \2% más rápido", "fr": r"\1 \2 % plus rapide", "de": r"\1 \2 % schneller",
        "pt": r"\1 \2% mais rápido", "it": r"\1 \2% più veloce", "zh": r"\1 加快了 \2%"}),
    (r"\b(\w+) moves (\d+)% less", {
        "es": r"\1 se mueve un \2% menos", "fr": r"\1 bouge \2 % de moins", "de": r"\1 bewegt sich \2 % weniger",
        "pt": r"\1 se move \2% menos", "it": r"\1 si muove il \2% in meno", "zh": r"\1 动作减少 \2%"}),
    (r"\b(\w+) moves (\d+)% more", {
        "es": r"\1 se mueve un \2% más", "fr": r"\1 bouge \2 % de plus", "de": r"\1 bewegt sich \2 % mehr",
        "pt": r"\1 se move \2% mais", "it": r"\1 si muove il \2% in più", "zh": r"\1 动作增加 \2%"}),
    (r"[Ll]ength " + _N + " s → " + _N + " s", {
        "es": r"duración \1 s → \2 s", "fr": r"durée \1 s → \2 s", "de": r"Länge \1 s → \2 s",
        "pt": r"duração \1 s → \2 s", "it": r"durata \1 s → \2 s", "zh": r"时长 \1 秒 → \2 秒"}),
    (r"[Nn]ew seed (\d+)", {
        "es": r"nueva semilla \1", "fr": r"nouvelle graine \1", "de": r"neuer Seed \1", "pt": r"nova semente \1",
        "it": r"nuovo seme \1", "zh": r"新种子 \1"}),
    (r"[Cc]amera holds still", {
        "es": "la cámara queda fija", "fr": "la caméra reste fixe", "de": "die Kamera steht still",
        "pt": "a câmera fica parada", "it": "la telecamera resta ferma", "zh": "镜头保持静止"}),
    (r"[Cc]amera: ", {"es": "cámara: ", "fr": "caméra : ", "de": "Kamera: ", "pt": "câmera: ", "it": "telecamera: ",
                      "zh": "镜头："}),
    (r"[Bb]ack to the previous plan", {
        "es": "volví al plan anterior", "fr": "retour au plan précédent", "de": "zurück zum vorigen Plan",
        "pt": "voltei ao plano anterior", "it": "tornato al piano precedente", "zh": "已回到上一个方案"}),
    (r"\b(\w+) stopped moving", {
        "es": r"\1 ya no se mueve", "fr": r"\1 ne bouge plus", "de": r"\1 bewegt sich nicht mehr",
        "pt": r"\1 parou de se mover", "it": r"\1 non si muove più", "zh": r"\1 停止移动"}),
    (r"[Aa]dded (\w+): ", {"es": r"añadí \1: ", "fr": r"ajouté \1 : ", "de": r"\1 hinzugefügt: ",
                           "pt": r"adicionei \1: ", "it": r"aggiunto \1: ", "zh": r"添加了\1："}),
    (r"I did not understand", {"es": "No entendí", "fr": "Je n'ai pas compris", "de": "Ich habe nicht verstanden",
                               "pt": "Não entendi", "it": "Non ho capito", "zh": "我没有理解"}),
    (r"Nothing to change: the plan already does that", {
        "es": "Nada que cambiar: el plan ya lo hace", "fr": "Rien à changer : le plan le fait déjà",
        "de": "Nichts zu ändern: der Plan tut das schon", "pt": "Nada a mudar: o plano já faz isso",
        "it": "Niente da cambiare: il piano lo fa già", "zh": "无需更改：方案已经是这样"}),
)
SUBJECTS: dict[str, dict[str, str]] = {
    "es": {"hair": "pelo", "eyes": "ojos", "water": "agua", "clouds": "nubes", "trees": "árboles", "tail": "cola",
           "camera": "cámara", "mouth": "boca", "head": "cabeza", "body": "cuerpo", "animal": "animal"},
    "fr": {"hair": "cheveux", "eyes": "yeux", "water": "eau", "clouds": "nuages", "trees": "arbres", "tail": "queue",
           "camera": "caméra", "mouth": "bouche", "head": "tête", "body": "corps"},
    "de": {"hair": "Haare", "eyes": "Augen", "water": "Wasser", "clouds": "Wolken", "trees": "Bäume",
           "tail": "Schwanz", "camera": "Kamera", "mouth": "Mund", "head": "Kopf", "body": "Körper", "animal": "Tier"},
    "pt": {"hair": "cabelo", "eyes": "olhos", "water": "água", "clouds": "nuvens", "trees": "árvores", "tail": "rabo",
           "camera": "câmera", "mouth": "boca", "head": "cabeça", "body": "corpo"},
    "it": {"hair": "capelli", "eyes": "occhi", "water": "acqua", "clouds": "nuvole", "trees": "alberi", "tail": "coda",
           "camera": "telecamera", "mouth": "bocca", "head": "testa", "body": "corpo"},
    "zh": {"hair": "头发", "eyes": "眼睛", "water": "水", "clouds": "云", "trees": "树", "tail": "尾巴", "camera": "镜头",
           "mouth": "嘴", "head": "头", "body": "身体", "animal": "动物"},
}
_COMPILED = tuple((re.compile(p), t) for p, t in PHRASES)


def translate_reply(text: str, lang: str) -> str:
    """`text` with the phrases that have a translation in `lang` translated (and their subjects named)."""
    if lang not in SUBJECTS:
        return text
    names = SUBJECTS[lang]

    def sub(template: str) -> object:
        def fill(m: re.Match[str]) -> str:
            out = template
            for i, g in enumerate(m.groups(), start=1):
                name = names.get(g.lower(), g) if g else ""
                out = out.replace(f"\\{i}", name[:1].upper() + name[1:] if g and g[:1].isupper() else name)
            return out
        return fill

    for pattern, templates in _COMPILED:
        if lang in templates:
            text = pattern.sub(sub(templates[lang]), text)  # type: ignore[arg-type]
    return text[:1].upper() + text[1:]
