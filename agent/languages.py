"""Other languages: Spanish, French, German, Portuguese, Italian and Chinese messages are read in English.

The common words for motion, speed, camera, duration, seed and undo (and the usual subjects) of each language
are replaced by their English words before the rule planner reads the message (`translate`). A message is
taken as one language only when it says at least two of that language's words, or one that cannot be
English (accented, several words, Chinese), so "the flowers die" stays English. The reply is translated back
where a translation exists (agent.language_replies).
"""

from __future__ import annotations

import re
from functools import cache

from agent import vocabulary as V

LANGUAGE_NAMES = {"es": "Spanish", "fr": "French", "de": "German", "pt": "Portuguese", "it": "Italian",
                  "zh": "Chinese"}

# "foreign|variant: english; ..." per language. Lower case; the planner's normaliser has lowered the message.
_TABLES: dict[str, str] = {
    "es": """
        más lento|mas lento|más lenta|mas lenta|más despacio|mas despacio: slower; más rápido|mas rapido|más rápida|mas rapida: faster;
        lento|lenta: slow; lentamente|despacio: slowly; rápido|rapido|rápida|rapida: fast; rápidamente: quickly;
        suave|suavemente: gently; más suave|mas suave: gentler; más fuerte|mas fuerte: stronger; más: more;
        cabello|pelo: hair; ojos: eyes; sonrisa: smile; sonríe|sonrie: smiles; parpadea|parpadear: blinks;
        agua: water; nubes: clouds; cielo: sky; árboles|arboles: trees; hojas: leaves; fuego: fire; humo: smoke;
        nieve: snow; lluvia: rain; perro: dog; gato: cat; la cola|su cola: the tail; orejas: ears; alas: wings;
        flores: flowers; manos: hands; cabeza: head; cara|rostro: face; viento: wind; niebla: fog; olas: waves;
        mar: sea; río: river; cámara|camara: camera; acércate|acercate|acerca la cámara|acercar: zoom in;
        aléjate|alejate|aleja la cámara|alejar: zoom out; paneo|panea: pan; izquierda: left; derecha: right;
        a la izquierda: to the left; a la derecha: to the right; gira alrededor|órbita|orbita: orbit;
        cámara fija|camara fija|cámara quieta: static camera; quieta|quieto|fija: still; arriba: up; abajo: down;
        segundos: seconds; segundo: second; más largo|mas largo: longer; más corto|mas corto: shorter;
        la mitad: half; semilla: seed; nueva semilla|otra semilla: new seed; misma semilla: same seed;
        otra vez|de nuevo: try again; deshacer|deshaz: undo; vuelve atrás|vuelve atras: go back;
        empezar de nuevo|empieza de nuevo: start over; se mueve|mueve|mover: moves; ondea: ripples; fluye: flows;
        se balancea|se mece: sways; cae|caen: fall; sin: without; y: and; pero: but; con: with;
        por favor: please; haz|hacer|pon: make; el|los|las: the; una: a; del: of the; su|sus: her;
        mueva|muevan: move; un poco: a little; muy: very; mucho: much; un: a; en: in; la: the; playa: beach;
        bosque: forest; montaña|montana: mountain; ciudad: city; mujer: woman; hombre: man; niña|nina: girl;
        niño|nino: boy; foto: photo; retrato: portrait; cámara a la izquierda: pan left;
        cámara a la derecha: pan right; que|se|lo|le: """,
    "fr": """
        plus lent|plus lente|plus lentement: slower; plus vite|plus rapide: faster; lent|lente: slow;
        lentement: slowly; vite|rapide: fast; rapidement: quickly; doucement: gently; plus doux|plus douce: gentler;
        plus fort|plus forte: stronger; plus: more; cheveux: hair; yeux: eyes; sourire|sourit: smiles;
        cligne des yeux|cligne: blinks; eau: water; nuages: clouds; ciel: sky; arbres: trees; feuilles: leaves;
        feu: fire; fumée|fumee: smoke; neige: snow; pluie: rain; chien: dog; le chat|un chat: the cat;
        queue: tail; oreilles: ears; ailes: wings; fleurs: flowers; mains: hands; tête|tete: head; visage: face;
        vent: wind; brouillard: fog; vagues: waves; mer: sea; rivière|riviere: river; caméra: camera;
        zoom avant|zoomer: zoom in; zoom arrière|zoom arriere|dézoomer|dezoomer: zoom out; panoramique: pan;
        gauche: left; droite: right; à gauche|vers la gauche: to the left; à droite|vers la droite: to the right;
        tourner autour|orbite: orbit; caméra fixe|camera fixe: static camera; fixe|immobile: still;
        secondes: seconds; seconde: second; plus long|plus longue: longer; plus court|plus courte: shorter;
        graine: seed; nouvelle graine|autre graine: new seed; même graine|meme graine: same seed; encore: again;
        annuler|annule: undo; revenir en arrière|reviens en arrière: go back; recommencer|recommence: start over;
        bouge|bouger: moves; ondule: ripples; coule: flows; se balance: sways; tombe|tombent: fall;
        sans: without; pas de: no; et: and; mais: but; avec: with; s'il vous plaît|s'il te plaît|svp: please;
        fais|rends: make; les: the; une: a; des|du: of the; ses|son|sa: her; sur: on; un peu: a little;
        très|tres: very; beaucoup: much; le|la: the; un: a; dans: in; plage: beach; forêt|foret: forest;
        montagne: mountain; ville: city; femme: woman; homme: man; fille: girl; garçon|garcon: boy;
        portrait: portrait; que|qui|se: """,
    "de": """
        langsamer: slower; schneller: faster; langsam: slow; schnell: fast; sanft: gently; sanfter: gentler;
        stärker|staerker: stronger; ruhiger: calmer; mehr: more; haare|haar: hair; augen: eyes;
        lächeln|lächelt|laechelt: smiles; blinzeln|blinzelt: blinks; wasser: water; wolken: clouds;
        himmel: sky; bäume|baeume: trees; blätter|blaetter: leaves; feuer: fire; rauch: smoke; schnee: snow;
        regen: rain; hund: dog; katze: cat; schwanz: tail; ohren: ears; flügel|fluegel: wings; blumen: flowers;
        hände|haende: hands; kopf: head; gesicht: face; nebel: fog; wellen: waves; meer: sea; fluss: river;
        kamera: camera; ranzoomen|heranzoomen|reinzoomen: zoom in; rauszoomen|herauszoomen: zoom out;
        schwenk|schwenken|schwenke: pan; links: left; rechts: right; nach links: to the left;
        nach rechts: to the right; umkreisen|umkreist: orbit; statische kamera|feste kamera: static camera;
        sekunden: seconds; sekunde: second; länger|laenger: longer; kürzer|kuerzer: shorter; hälfte: half;
        neuer seed|anderer seed: new seed; gleicher seed: same seed; nochmal|noch einmal: try again;
        rückgängig|rueckgaengig|rückgängig machen: undo; zurück|zurueck: go back; von vorne|neu anfangen: start over;
        bewegt|bewegen: moves; fließt|fliesst: flows; weht: blows; wiegt sich: sways; fällt|fallen: fall;
        ohne: without; kein|keine: no; und: and; aber: but; mit: with; bitte: please; mach|mache: make;
        der|die|das|den: the; ein|eine: a; ihr|ihre|ihren|sein|seine: her; es: it; etwas: a little; sehr: very;
        viel: much; auf: on; im: in the; am: at the; strand: beach; wald: forest; berg|berge: mountains;
        stadt: city; frau: woman; mann: man; mädchen|maedchen: girl; junge: boy; porträt|portraet: portrait;
        zu|sich: """,
    "pt": """
        mais lento|mais devagar: slower; mais rápido|mais rapido: faster; devagar: slowly; lento: slow;
        rápido|rapido: fast; suavemente: gently; mais suave: gentler; mais forte: stronger; mais: more;
        cabelo: hair; olhos: eyes; sorriso|sorri: smiles; pisca: blinks; água: water; nuvens: clouds; céu: sky;
        árvores|arvores: trees; folhas: leaves; fogo: fire; fumaça|fumaca: smoke; neve: snow; chuva: rain;
        cachorro|cão: dog; gato: cat; rabo|cauda: tail; orelhas: ears; asas: wings; mãos|maos: hands;
        cabeça|cabeca: head; rosto: face; vento: wind; neblina|névoa: fog; ondas: waves; câmera|câmara: camera;
        aproxime|aproximar|aproxima: zoom in; afaste|afastar|afasta: zoom out; panorâmica: pan;
        esquerda: left; direita: right; para a esquerda: to the left; para a direita: to the right;
        orbitar|girar em volta: orbit; câmera parada|câmera fixa|camera parada: static camera; parada|parado: still;
        mais longo|mais comprido: longer; mais curto: shorter; metade: half; semente: seed;
        nova semente|outra semente: new seed; mesma semente: same seed; outra vez: try again;
        desfazer|desfaça|desfaz: undo; voltar: go back; recomeçar|começar de novo: start over;
        se move|mexe: moves; balança|balanca: sways; caem: fall; flui: flows; sem: without; não|nao: no;
        e: and; mas: but; com: with; faça|faca|deixe: make; os: the; uma: a; seu|sua: her; um pouco: a little;
        muito: very; mova|movam: move; um: a; na|no: in the; em: in; praia: beach; floresta: forest;
        montanha: mountain; cidade: city; mulher: woman; homem: man; menina: girl; menino: boy;
        retrato: portrait; câmera para a esquerda: pan left; câmera para a direita: pan right; que|se: """,
    "it": """
        più lento|piu lento|più lenta|piu lenta: slower; più veloce|piu veloce: faster; lentamente: slowly;
        veloce: fast; velocemente: quickly; dolcemente: gently; più dolce|piu dolce: gentler;
        più forte|piu forte: stronger; più calmo|piu calmo: calmer; più|piu: more; capelli: hair; occhi: eyes;
        sorride: smiles; sbatte le palpebre: blinks; acqua: water; nuvole: clouds; cielo: sky; alberi: trees;
        foglie: leaves; fuoco: fire; fumo: smoke; pioggia: rain; il cane|un cane: the dog; gatto: cat;
        la coda: the tail; orecchie: ears; fiori: flowers; le mani: the hands; testa: head; viso|volto: face;
        nebbia: fog; onde: waves; fiume: river; telecamera|fotocamera: camera; zoom avanti|avvicina: zoom in;
        zoom indietro|allontana: zoom out; panoramica: pan; sinistra: left; destra: right;
        a sinistra: to the left; a destra: to the right; orbita: orbit; telecamera fissa: static camera;
        ferma|fermo|fissa: still; secondi: seconds; più lungo|piu lungo: longer; più corto|piu corto: shorter;
        seme: seed; nuovo seme|altro seme: new seed; stesso seme: same seed; di nuovo: try again; ancora: again;
        annulla: undo; torna indietro: go back; ricomincia: start over; si muove|muove: moves;
        ondeggia: sways; cadono: fall; scorre: flows; senza: without; niente|nessun: no; ma: but;
        per favore: please; fai|rendi: make; il|gli: the; della|del: of the; suoi|sua: her; lenti|lente: slow;
        più lenti|piu lenti: slower; un po'|un poco: a little; molto: very; un|uno|una: a; la|lo: the;
        nella|nel: in the; spiaggia: beach; bosco|foresta: forest; montagna: mountain; città|citta: city;
        donna: woman; uomo: man; ragazza: girl; ragazzo: boy; ritratto: portrait; che|si: """,
    "zh": """
        慢一点|慢一些|更慢|放慢|慢点: slower; 快一点|快一些|更快|加快|快点: faster; 慢慢地|缓慢地|缓慢: slowly;
        慢: slow; 快: fast; 轻轻地|轻柔地|轻轻: gently; 更柔和|柔和一点: gentler; 更强烈|强烈一点: stronger;
        头发: hair; 眼睛: eyes; 微笑: smiles; 眨眼: blinks; 水面|水: water; 云朵|云: clouds; 天空: sky;
        树叶: leaves; 树: trees; 火焰|火: fire; 烟雾|烟: smoke; 雪花|雪: snow; 雨: rain; 小狗|狗: dog;
        小猫|猫: cat; 尾巴: tail; 耳朵: ears; 翅膀: wings; 花朵|花: flowers; 双手|手: hands; 头部|头: head;
        脸: face; 风: wind; 雾: fog; 海浪|波浪: waves; 大海|海: sea; 河流|河: river; 镜头|相机|摄像机: camera;
        推近|拉近|放大: zoom in; 拉远|缩小: zoom out; 向左平移|左移: pan left; 向右平移|右移: pan right;
        平移: pan; 向左: to the left; 向右: to the right; 环绕: orbit; 固定镜头|镜头不动|镜头静止: static camera;
        静止: still; 秒钟|秒: seconds; 更长|长一点: longer; 更短|短一点: shorter; 一半: half;
        新种子|换个种子|换一个种子: new seed; 同一个种子|相同种子|同样的种子: same seed; 种子: seed;
        再来一次: try again; 撤销|撤回: undo; 返回上一步|回到上一步: go back; 重新开始: start over;
        飘动|飘: flows; 流动: flows; 摇摆|摇曳: sways; 飘落|落下: fall; 移动|动: moves; 不要|没有: no;
        并且|然后|和: and; 但是: but; 请: please; 让: make; 她的|他的: her; 一: one; 二|两: two; 三: three;
        四: four; 五: five; 六: six; 七: seven; 八: eight; 九: nine; 十: ten; 的: """,
}
_CJK = re.compile(r"[\u4e00-\u9fff]")
_CJK_PUNCTUATION = str.maketrans({"，": ", ", "。": ". ", "！": "! ", "？": "? ", "、": ", ", "：": ": ", "；": "; "})


@cache
def _phrases() -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    for lang, table in _TABLES.items():
        entries: dict[str, str] = {}
        for item in table.split(";"):
            foreign, _, english = item.partition(":")
            for form in foreign.split("|"):
                if form.strip():
                    entries[form.strip()] = english.strip()
        tables[lang] = entries
    return tables


@cache
def _pattern(lang: str) -> re.Pattern[str]:
    alternation = V.alternation(_phrases()[lang])  # longest first, grouped by first letter (see there)
    if lang == "zh":
        return re.compile(alternation)
    return re.compile(r"(?<![\w'])" + alternation + r"(?![\w'])")


def _distinctive(form: str) -> bool:
    """A form that cannot be an English word: accented, several words, or Chinese."""
    return " " in form or not form.isascii()


def _telling(lang: str, form: str) -> bool:
    """Does `form` tell the language? Articles and little words ("die", "den", "con") do not."""
    return not all(w in V.FILLER for w in _phrases()[lang][form].split())


def _all_known(lang: str, text: str) -> bool:
    """Is every word of the text one of `lang`'s words or a filler word ("deshacer", "nochmal bitte")?"""
    rest = _pattern(lang).sub(" ", text)
    return all(w in V.FILLER for w in re.findall(r"[^\W\d_]+", rest))


def detect(text: str) -> tuple[str, int]:
    """(language, how many of its telling words the normalised text says); ("en", 0) when none counts."""
    if _CJK.search(text):
        return "zh", len(_pattern("zh").findall(text))
    best, hits = "en", 0
    for lang in _TABLES:
        if lang == "zh":
            continue
        said = _pattern(lang).findall(text)
        found = [f for f in said if _telling(lang, f)]
        if len(found) >= 2 or any(_distinctive(f) for f in found) or (said and _all_known(lang, text)):
            if len(found) > hits:
                best, hits = lang, len(found)
    return best, hits


def translate(text: str) -> tuple[str, str]:
    """The normalised `text` with another language's words replaced by English ones, and the language ("en"
    when the message is English). Chinese numbers before 秒 become digits' words ("五秒" → "five seconds")."""
    text = text.translate(_CJK_PUNCTUATION)
    lang, _ = detect(text)
    if lang == "en":
        return text, "en"
    table = _phrases()[lang]
    english = _pattern(lang).sub(lambda m: f" {table[m.group(0)]} ", text)
    if lang == "zh":
        english = re.sub(r"(\d)\s*(seconds)", r"\1 \2", english)
    return re.sub(r"\s+", " ", english).strip(), lang


def writes_throughout(text: str, lang: str) -> bool:
    """Does the message say more of `lang`'s words than English ones (then the reply is in `lang` too)?"""
    if lang == "en":
        return False
    if lang == "zh":
        return len(re.findall(r"[a-z]{3,}", text)) <= len(_pattern("zh").findall(text))
    said = _pattern(lang).findall(text)
    foreign = sum(len(f.split()) for f in said)
    return foreign >= len(re.findall(r"[^\W\d_]+", text)) / 2
